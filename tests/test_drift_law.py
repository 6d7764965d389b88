"""Drift law 2 (exp of a log) against law 1 (NumPy's pow), and chip files of either law."""

import h5py
import numpy as np
import pytest

from xbarsim.config import ChipConfig
from xbarsim.crossbar.laws import device
from xbarsim.errors import XbarsimError


@pytest.mark.parametrize("drift", [{"kind": "pcm"}, {"kind": "power_law", "nu_mean": 0.05, "nu_std": 0.02}])
def test_law_2_moves_a_float32_conductance_by_at_most_one_ulp_and_rarely(drift):
    cfg = ChipConfig.preset("pcm").with_values({"device.drift": drift}).device
    g_prog = np.random.default_rng(1).uniform(0, 25, (2, 1000, 1000)).astype(np.float32)
    stuck = np.zeros(g_prog.shape, np.int8)
    differ = 0
    for t in (60.0, 86400.0, 3.15e7):
        old, new = (device.drifted(g_prog, stuck, cfg, t, 3, drift_law=law) for law in (1, 2))
        assert np.all(np.abs(old.astype(np.float64) - new) <= np.spacing(np.maximum(np.abs(old), np.abs(new))))
        differ += np.count_nonzero(old != new)
    assert differ <= 3  # about 1 device in 10^8 (docs/file-formats.md)
    factor = device.drift_factor(g_prog, cfg, 3600.0, 3, drift_law=2)
    expected = device.drift_factor(g_prog, cfg, 3600.0, 3, drift_law=1)
    np.testing.assert_allclose(factor, expected, rtol=1e-14)


def _drifted_lenet(law: int):
    import torch

    from xbarsim import map_model
    from xbarsim.models import zoo

    torch.manual_seed(0)
    chip = map_model(zoo.build("lenet5", image_size=8), ChipConfig.preset("pcm").with_values({"tile.rows": 32}), seed=5)
    for matrix in chip.chip.matrices():
        matrix.tiles.drift_law = law  # as an xbarsim of that law programmed it
    chip.drift(86400.0)
    return chip


def test_a_file_without_a_drift_law_loads_with_law_1_to_the_same_chip(tmp_path):
    from xbarsim import load_chip

    chip = _drifted_lenet(1)
    path = tmp_path / "old.h5"
    chip.save(path)
    with h5py.File(path, "a") as f:  # as written before drift laws were stored
        for layer in f["layers"].values():
            for matrix in layer.values():
                assert matrix.attrs["drift_law"] == 1
                del matrix.attrs["drift_law"]
    loaded = load_chip(path, progress=False)
    for ours, theirs in zip(loaded.chip.matrices(), chip.chip.matrices(), strict=True):
        assert ours.tiles.drift_law == 1
        assert np.array_equal(ours.tiles.g_now, theirs.tiles.g_now)
    loaded.program(9)  # programmed anew: the current law
    assert all(m.tiles.drift_law == device.DRIFT_LAW for m in loaded.chip.matrices())


def test_a_new_chip_is_saved_and_loaded_with_law_2(tmp_path):
    from xbarsim import load_chip

    chip = _drifted_lenet(device.DRIFT_LAW)
    path = tmp_path / "new.h5"
    chip.save(path)
    loaded = load_chip(path, progress=False)
    assert all(m.tiles.drift_law == 2 for m in loaded.chip.matrices())
    for ours, theirs in zip(loaded.chip.matrices(), chip.chip.matrices(), strict=True):
        assert np.array_equal(ours.tiles.g_now, theirs.tiles.g_now)
    with h5py.File(path, "a") as f:
        next(iter(next(iter(f["layers"].values())).values())).attrs["drift_law"] = 3
    with pytest.raises(XbarsimError, match="drift_law must be 1 or 2"):
        load_chip(path, progress=False)
