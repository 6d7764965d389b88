"""The block normals and the noise/ADC pass against the NumPy reference, bit for bit, on every
path: vector remainders, odd output counts, chunk edges, counters wrapping mod 2^64, serial and
threaded kernels."""

import numpy as np
import pytest
from numba import njit

from xbarsim.config import ChipConfig
from xbarsim.crossbar.truth import reference
from xbarsim.crossbar.laws import rng
from xbarsim.crossbar import threads
from xbarsim.crossbar.tile import TileArray


@njit(error_model="numpy")
def _block_normals(key, first, n):
    z = np.empty((2, n), np.float32)
    bits = np.empty((2, n), np.uint32)
    rng.normal_pairs_into(key, first, z[0], z[1], bits[0], bits[1])
    return z


@njit(error_model="numpy")
def _one_by_one(key, first, n):
    z = np.empty((2, n), np.float32)
    for k in range(n):
        z[0, k], z[1, k] = rng.normal_pair(key, first + np.uint64(k))
    return z


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 31, 257, 1000])
@pytest.mark.parametrize("first", [0, 12_345, 2**64 - 5])  # the last one wraps mod 2^64 inside the block
def test_block_normals_equal_the_reference_and_the_one_by_one_normals(n, first):
    key = rng.stream_key(3, rng.PURPOSE_READ, 2)
    block = _block_normals(key, np.uint64(first), n)
    counters = (np.uint64(first) + np.arange(n, dtype=np.uint64)) if n else np.zeros(0, np.uint64)
    z0, z1 = reference.normal_pairs(key, counters)
    assert np.array_equal(block[0], z0) and np.array_equal(block[1], z1)
    assert np.array_equal(block, _one_by_one(key, np.uint64(first), n))


@pytest.mark.parametrize("serial", [True, False])
def test_fills_across_chunk_edges_equal_the_reference(serial):
    key = rng.stream_key(8, rng.PURPOSE_WRITE)
    n = 2 * rng.NORMALS_CHUNK + 3
    z = rng.normals(key, n, first=2**40 + 1, serial=serial)
    z0, z1 = reference.normal_pairs(key, np.uint64(2**40 + 1) + np.arange(n, dtype=np.uint64))
    assert np.array_equal(z[0], z0) and np.array_equal(z[1], z1)


# each kind of read variance of the fused pass, on an odd number of outputs (the normals' halves
# differ in length), one row block and several; without an ADC every bit of the noise shows
NOISE_PATHS = {
    "none": {},
    "output noise only": {"tile.out_noise": 0.05},
    "additive": {"device.read_noise": {"kind": "additive", "sigma": 0.5}, "tile.out_noise": 0.04},
    "pcm, output referred": {"device.read_noise": {"kind": "pcm", "time": "per_read"}, "tile.out_noise": 0.04},
    "pcm, per device": {"device.read_noise": {"kind": "pcm", "time": "per_read"}, "tile.read_noise_path": "per_device"},
}
ADCS = {"none": {"range": "none"}, "clip": {"range": "fixed", "bound": 2.0}, "8-bit": {"bits": 8, "range": "fixed", "bound": 3.0}}


@pytest.mark.parametrize("path", NOISE_PATHS)
@pytest.mark.parametrize("adc", ADCS)
@pytest.mark.parametrize("rows", [64, 512])
@pytest.mark.parametrize("threaded", [False, True])
# (outputs, vectors): the pass draws NOISE_PAIRS_PER_CHUNK // ceil(outputs / 2) vectors' normals at
# once (53 for 37 outputs, 341 for 5): vectors that end mid-chunk, and several chunks
@pytest.mark.parametrize(("n_out", "n_batch"), [(37, 70), (5, 700)])
def test_the_noise_pass_equals_the_reference_on_odd_output_counts(monkeypatch, path, adc, rows, threaded, n_out, n_batch):
    monkeypatch.setattr(threads, "PARALLEL_MIN_OUTPUTS", 0 if threaded else 1 << 62)
    gen = np.random.default_rng(5)
    w = (gen.standard_normal((n_out, 150)) / np.sqrt(150)).astype(np.float32)
    x = gen.standard_normal((n_batch, 150)).astype(np.float32)
    cfg = ChipConfig.preset("pcm").with_values({"tile.rows": rows, "tile.cols": 512, "tile.dac": {"bits": 8, "range": "dynamic"},
                                                "device.read_noise": {"kind": "none"}, "tile.out_noise": 0.0, "tile.adc": ADCS[adc], **NOISE_PATHS[path]})  # fmt: skip
    tiles = TileArray.from_weights(w, cfg, seed=6)
    tiles.mvm(x[:3])  # the reference must follow the read counter
    expected = reference.mvm(tiles, x, first_vector=3)
    assert np.array_equal(tiles.mvm(x), expected)
    # the next read draws new noise (and without noise reads the same)
    assert np.array_equal(tiles.mvm(x), expected) == (path == "none")
