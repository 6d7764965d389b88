"""The torch backend draws the very numbers of ``crossbar.laws.rng``, bit for bit (int64 hash, float32 Box-Muller)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xbarsim.crossbar.laws import rng
from xbarsim.crossbar.truth import reference
from xbarsim.crossbar_torch import rng as trng

CPU = torch.device("cpu")


def bits(t: torch.Tensor) -> np.ndarray:
    return t.numpy().view(np.uint32 if t.dtype == torch.float32 else np.uint64)


@pytest.mark.parametrize("first", [0, 12345, 2**40 + 7, 2**63 + 5, 2**64 - 300])  # the last one wraps past 2^64
def test_normals_equal_the_numba_kernels_bit_for_bit(first):
    key = rng.stream_key(3, rng.PURPOSE_READ, 2)
    n = 5000
    expected = rng.normals(key, n, first)
    found = trng.normals(key, n, CPU, trng._signed(first))
    assert np.array_equal(bits(found), expected.view(np.uint32))


@given(st.integers(0, 2**64 - 1), st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=64))
def test_hash_and_pairs_equal_the_numpy_reference(key, counters):
    c = np.array(counters, np.uint64)
    expected_hash = reference.hash64(np.uint64(key), c)
    found_hash = trng.hash64(trng.key_tensor(key, CPU), torch.from_numpy(c.view(np.int64)))
    assert np.array_equal(found_hash.numpy().view(np.uint64), expected_hash)
    z0, z1 = reference.normal_pairs(np.uint64(key), c)
    f0, f1 = trng.normal_pairs(trng.key_tensor(key, CPU), torch.from_numpy(c.view(np.int64)))
    assert np.array_equal(bits(f0), z0.view(np.uint32)) and np.array_equal(bits(f1), z1.view(np.uint32))


def test_uniforms_equal_the_numba_kernels_bit_for_bit():
    key = rng.stream_key(11, rng.PURPOSE_FAULT)
    expected = rng.uniforms(key, 4096, 77)
    found = trng.uniforms(key, 4096, CPU, 77)
    assert found.dtype == torch.float64 and np.array_equal(found.numpy(), expected)


def test_device_draws_have_the_layout_of_the_laws():
    from xbarsim.crossbar.laws import device

    expected = device.device_normals(5, rng.PURPOSE_WRITE, (2, 30, 17))
    found = trng.device_normals(5, rng.PURPOSE_WRITE, (2, 30, 17), CPU)
    assert np.array_equal(bits(found), expected.view(np.uint32))
