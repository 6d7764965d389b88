"""The thread policy: layer choice, serial/parallel choice, and that neither changes a result."""

import os
import subprocess
import sys
import textwrap
import threading

import numba
import numpy as np
import pytest

from xbarsim.config import ChipConfig
from xbarsim.crossbar import threads
from xbarsim.crossbar.tile import TileArray

PATHS = {
    "converters only": {"tile.dac": {"bits": 8, "range": "dynamic"}, "tile.adc": {"bits": 8, "range": "fixed", "bound": 10.0}},
    "additive read noise": {"device.read_noise": {"kind": "additive", "sigma": 0.5}, "tile.out_noise": 0.04},
    "pcm, output referred": {},
    "pcm, per device": {"tile.read_noise_path": "per_device"},
    "pcm, per read": {"device.read_noise": {"kind": "pcm", "time": "per_read"}},
    "unscaled weights": {"mapping.weight_scale": "none"},
    "bound management": {"tile.bound_management": "iterative", "tile.adc": {"bits": 8, "range": "fixed", "bound": 2.0}},
    "bound management, per device": {"tile.bound_management": "iterative", "tile.adc": {"bits": 8, "range": "fixed", "bound": 2.0},
                                     "tile.read_noise_path": "per_device"},
    "bound management, pcm per read": {"tile.bound_management": "iterative", "tile.adc": {"bits": 8, "range": "fixed", "bound": 2.0},
                                       "device.read_noise": {"kind": "pcm", "time": "per_read"}},
}


def _tiles(path: str, seed: int = 3) -> TileArray:
    cfg = ChipConfig.preset("pcm").with_values({"tile.rows": 64, "tile.cols": 48, **PATHS[path]})
    w = np.random.default_rng(0).standard_normal((70, 150)).astype(np.float32)
    tiles = TileArray.from_weights(w, cfg, seed=seed)
    tiles.drift(3600.0)
    return tiles


def _mvm_with(monkeypatch, tiles: TileArray, x: np.ndarray, min_outputs: int, num_threads: int) -> np.ndarray:
    monkeypatch.setattr(threads, "PARALLEL_MIN_OUTPUTS", min_outputs)
    before = numba.get_num_threads()
    numba.set_num_threads(num_threads)
    try:
        return tiles.mvm(x)
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("path", PATHS)
def test_parallel_and_serial_kernels_give_the_same_bits(monkeypatch, path):
    x = np.random.default_rng(1).standard_normal((37, 150)).astype(np.float32)
    arrays = [_tiles(path) for _ in range(3)]
    serial = _mvm_with(monkeypatch, arrays[0], x, 1 << 62, numba.config.NUMBA_NUM_THREADS)
    parallel_all = _mvm_with(monkeypatch, arrays[1], x, 0, numba.config.NUMBA_NUM_THREADS)
    parallel_one = _mvm_with(monkeypatch, arrays[2], x, 0, 1)
    assert np.array_equal(serial, parallel_all) and np.array_equal(serial, parallel_one)
    assert arrays[0].bm_rereads == arrays[1].bm_rereads == arrays[2].bm_rereads
    assert (arrays[0].bm_rereads > 0) == path.startswith("bound management")


def test_parallel_and_serial_patch_kernels_give_the_same_bits(monkeypatch):
    cfg = ChipConfig.preset("pcm").with_values({"tile.rows": 64})
    w = np.random.default_rng(0).standard_normal((8, 3 * 3 * 5)).astype(np.float32)
    image = np.random.default_rng(1).standard_normal((2, 9, 9, 5)).astype(np.float32)
    outputs = []
    for min_outputs in (1 << 62, 0):
        monkeypatch.setattr(threads, "PARALLEL_MIN_OUTPUTS", min_outputs)
        tiles = TileArray.from_weights(w, cfg, seed=4)
        outputs.append(tiles.mvm_patches(image, (3, 3), (1, 1), (1, 1), (1, 1), (9, 9)))
    assert np.array_equal(outputs[0], outputs[1])


def test_small_calls_run_serially_and_large_ones_threaded_from_the_main_thread_only():
    assert not threads.use_parallel(threads.PARALLEL_MIN_OUTPUTS - 1)
    assert threads.use_parallel(threads.PARALLEL_MIN_OUTPUTS)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(threads.use_parallel(threads.PARALLEL_MIN_OUTPUTS)))
    worker.start()
    worker.join()
    assert seen == [False]


def test_inside_a_network_forward_only_large_calls_run_threaded():
    """``network_kernels`` (a network's forward on a quiet machine) raises the threshold by
    ``NETWORK_PARALLEL_FACTOR``, nested or not, and gives it back after."""
    small, large = threads.PARALLEL_MIN_OUTPUTS, threads.PARALLEL_MIN_OUTPUTS * threads.NETWORK_PARALLEL_FACTOR
    with threads.network_kernels():
        with threads.network_kernels():
            inside = (threads.use_parallel(small), threads.use_parallel(large))
        still = threads.use_parallel(small)
    assert inside == (False, True) and not still and threads.use_parallel(small)


def test_mvms_from_two_python_threads_at_once_match_sequential_ones(monkeypatch):
    monkeypatch.setattr(threads, "PARALLEL_MIN_OUTPUTS", 0)  # the main thread's calls run threaded
    x = np.random.default_rng(2).standard_normal((64, 150)).astype(np.float32)
    expected = [_tiles("pcm, output referred", seed).mvm(x) for seed in (5, 6)]
    arrays = [_tiles("pcm, output referred", seed) for seed in (5, 6)]
    results = {}

    def run(index: int) -> None:
        results[index] = np.concatenate([arrays[index].mvm(x[k : k + 16]) for k in range(0, 64, 16)])

    worker = threading.Thread(target=run, args=(1,))
    worker.start()
    run(0)
    worker.join()
    assert np.array_equal(results[0], expected[0]) and np.array_equal(results[1], expected[1])


def _layer_after_an_mvm(prelude: str, env_extra: dict) -> str:
    script = prelude + textwrap.dedent("""
        import numba, numpy as np
        from xbarsim import ChipConfig, TileArray
        from xbarsim.crossbar import threads
        threads.PARALLEL_MIN_OUTPUTS = 0
        tiles = TileArray.from_weights(np.ones((4, 4), np.float32), ChipConfig.preset("pcm"), seed=0)
        tiles.mvm(np.ones((8, 4), np.float32))
        print(numba.threading_layer())
    """)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    done = subprocess.run([sys.executable, "-c", script], env={**env, **env_extra}, capture_output=True, text=True, check=True)
    return done.stdout.split()[-1]


def test_the_workqueue_layer_is_chosen_whichever_is_imported_first_and_a_users_choice_is_kept():
    assert _layer_after_an_mvm("import torch\n", {}) == "workqueue"
    assert _layer_after_an_mvm("import xbarsim.crossbar.tile\nimport torch\n", {"OMP_WAIT_POLICY": "active"}) == "workqueue"
    assert _layer_after_an_mvm("import torch\n", {"NUMBA_THREADING_LAYER": "omp"}) == "omp"
