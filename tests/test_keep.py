"""The Numba backend's arrays keep their programmed devices while they fit the process's budget (``crossbar.keep``);
kept or regenerated, every read, drift and read epoch gives the same bits."""

import gc

import numpy as np
import pytest

from xbarsim.config import ChipConfig
from xbarsim.crossbar import keep
from xbarsim.crossbar.tile import TileArray

PRESETS = ["pcm", "aihwkit-hwa", "hermes", "neurram", "reram-cmo", "rram"]


def _history(tiles: TileArray, x: np.ndarray) -> list[np.ndarray]:
    """Reads, drifts and read epochs in a row, then every inspection of the devices."""
    seen = [tiles.mvm(x)]
    for t_s in (60.0, 86400.0, 3600.0):
        tiles.drift(t_s)
        seen.append(tiles.mvm(x))
    tiles.new_read_epoch()
    seen += [tiles.mvm(x), tiles.g_prog, tiles.stuck, tiles.g_now, tiles.weights()]
    tiles.program(11)
    seen.append(tiles.mvm(x))
    return seen


@pytest.mark.parametrize("preset", PRESETS)
def test_kept_and_regenerated_devices_give_the_same_bits(monkeypatch, preset):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((70, 300)).astype(np.float32)
    x = rng.uniform(-1, 1, (9, 300)).astype(np.float32)
    cfg = ChipConfig.preset(preset)
    monkeypatch.setenv("XBARSIM_KEEP_MB", "1000")
    kept = TileArray.from_weights(w, cfg, seed=5)
    assert kept._programmed is not None
    monkeypatch.setenv("XBARSIM_KEEP_MB", "0")
    regenerated = TileArray.from_weights(w, cfg, seed=5)
    assert regenerated._programmed is None
    for a, b in zip(_history(kept, x), _history(regenerated, x), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_inspecting_the_devices_gives_copies_of_the_kept_ones(monkeypatch):
    monkeypatch.setenv("XBARSIM_KEEP_MB", "1000")
    tiles = TileArray.from_weights(np.random.default_rng(2).standard_normal((20, 30)), ChipConfig.preset("pcm"), seed=1)
    before = tiles.g_prog.copy()
    tiles.g_prog[:] = 0.0
    tiles.programmed().g_prog[:] = 0.0
    assert np.array_equal(tiles.g_prog, before)


def test_the_budget_counts_what_arrays_keep_until_they_go(monkeypatch):
    w = np.random.default_rng(3).standard_normal((64, 128))
    cfg = ChipConfig.preset("pcm")
    monkeypatch.setenv("XBARSIM_KEEP_MB", "100000")
    gc.collect()  # what earlier tests left kept
    start = keep.kept_bytes()
    first = TileArray.from_weights(w, cfg, seed=1)
    one = keep.kept_bytes() - start
    assert one == 64 * 128 * (2 * 4 + 2 * 1 + 2 * 4)  # G_prog float32, stuck int8, the target pairs float32
    monkeypatch.setenv("XBARSIM_KEEP_MB", str((start + 1.5 * one) / 2**20))
    second = TileArray.from_weights(w, cfg, seed=2)  # over the budget: regenerates
    assert second._programmed is None and keep.kept_bytes() - start == one
    del first
    gc.collect()
    assert keep.kept_bytes() == start
    second.program(3)  # room again
    assert second._programmed is not None and keep.kept_bytes() - start == one


def test_a_copy_leaves_the_kept_devices_behind_and_programs_them_within_the_budget(monkeypatch):
    import copy
    import pickle

    w = np.random.default_rng(5).standard_normal((48, 96))
    x = np.random.default_rng(6).uniform(-1, 1, (5, 96)).astype(np.float32)
    monkeypatch.setenv("XBARSIM_KEEP_MB", "100000")
    gc.collect()
    start = keep.kept_bytes()
    original = TileArray.from_weights(w, ChipConfig.preset("pcm"), seed=3)
    one = keep.kept_bytes() - start
    twins = [copy.deepcopy(original), pickle.loads(pickle.dumps(original))]
    assert all(twin._programmed is None for twin in twins) and keep.kept_bytes() - start == one
    for tiles in (original, *twins):
        tiles.drift(86400.0)
    assert keep.kept_bytes() - start == 3 * one  # each copy counted once it kept its own
    reads = [tiles.mvm(x) for tiles in (original, *twins)]
    assert all(np.array_equal(reads[0], other) for other in reads[1:])


@pytest.mark.parametrize("setting", ["lots", "-1", "nan"])
def test_a_bad_budget_setting_is_named(monkeypatch, setting):
    monkeypatch.setenv("XBARSIM_KEEP_MB", setting)
    with pytest.raises(ValueError, match="XBARSIM_KEEP_MB"):
        TileArray.from_weights(np.ones((4, 4)), ChipConfig.preset("pcm"), seed=1)


def test_kept_devices_move_to_the_torch_backend_and_drift_there_as_at_home(monkeypatch):
    import torch

    from xbarsim.crossbar_torch.backend import torch_backend

    monkeypatch.setenv("XBARSIM_KEEP_MB", "1000")
    w = np.random.default_rng(4).standard_normal((40, 90)).astype(np.float32)
    home, moved = (TileArray.from_weights(w, ChipConfig.preset("hermes"), seed=6) for _ in range(2))
    assert moved._programmed is not None
    moved.to(torch_backend(torch.device("cpu")))
    assert moved._programmed is not None  # the kept devices went along, not programmed again
    home.drift(86400.0), moved.drift(86400.0)
    assert np.array_equal(home.g_now, moved.g_now) and np.array_equal(home.weights(), moved.weights())
