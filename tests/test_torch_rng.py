"""The torch backend draws the very per-read normals of the CPU (noise stream version 2,
``crossbar.laws.readnormals``), bit for bit: int64 hash, float32 Box-Muller with exactly rounded fused multiply-adds."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xbarsim.crossbar.laws import readnormals as cpu
from xbarsim.crossbar.laws import rng
from xbarsim.crossbar.truth import reference
from xbarsim.crossbar_torch import readnormals
from xbarsim.crossbar_torch import rng as trng

CPU = torch.device("cpu")


def bits(t: torch.Tensor) -> np.ndarray:
    return t.numpy().view(np.uint32 if t.dtype == torch.float32 else np.uint64)


@pytest.mark.parametrize("first", [0, 12345, 2**40 + 7, 2**63 + 5, 2**64 - 300])  # the last one wraps past 2^64
def test_read_normals_equal_the_cpu_kernels_bit_for_bit(first):
    key = rng.stream_key(3, rng.PURPOSE_READ, 2)
    expected = cpu.normals(np.uint64(key), 5000, first)
    found = torch.stack(readnormals.read_normal_pairs(trng.key_tensor(key, CPU), trng.counters(trng._signed(first), 5000, CPU)))
    assert np.array_equal(bits(found), expected.view(np.uint32))


@given(st.integers(0, 2**64 - 1), st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=64))
def test_hash_and_pairs_equal_the_numpy_reference(key, counters):
    c = np.array(counters, np.uint64)
    expected_hash = reference.hash64(np.uint64(key), c)
    found_hash = trng.hash64(trng.key_tensor(key, CPU), torch.from_numpy(c.view(np.int64)))
    assert np.array_equal(found_hash.numpy().view(np.uint64), expected_hash)
    z0, z1 = reference.read_normal_pairs(np.uint64(key), c)
    f0, f1 = readnormals.read_normal_pairs(trng.key_tensor(key, CPU), torch.from_numpy(c.view(np.int64)))
    assert np.array_equal(bits(f0), z0.view(np.uint32)) and np.array_equal(bits(f1), z1.view(np.uint32))


def nearest_float32(exact: Fraction) -> np.float32:
    """The float32 nearest an exact rational (ties to even), by comparing the neighbours of a first guess exactly."""
    guess = np.float32(float(exact))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    return min(candidates, key=lambda f: (abs(Fraction(float(f)) - exact), int(np.array(f).view(np.uint32)) & 1))


FLOAT32 = st.floats(-1e4, 1e4, width=32, allow_subnormal=False)


@given(FLOAT32, FLOAT32, FLOAT32, st.integers(-30, 0))
def test_fma32_rounds_the_exact_value_once(a, b, c, shift):
    """Against exact rational arithmetic, with addends that nearly cancel the product (the hard cases)."""
    c = np.float32(-np.float32(a) * np.float32(b)) + np.float32(c) * np.float32(2.0**shift)
    found = readnormals.fma32(torch.tensor([a], dtype=torch.float32), torch.tensor([b], dtype=torch.float32), float(c))
    expected = nearest_float32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))
    assert found.numpy()[0].view(np.uint32) == np.array(expected).view(np.uint32)


def test_rereads_draw_the_documented_counters():
    """A tile of width 5 at columns 3..8 of 11 outputs: the first normals of counters base * 6 + 0..2, then the
    second normals of base * 6 + 0..1 (the CPU's re-read counters, drawn here through the CPU's kernels)."""
    key = rng.stream_key(2, rng.PURPOSE_BM_READ, 0)
    base = torch.tensor([5, 900], dtype=torch.int64)
    found = readnormals.reread_output_normals(trng.key_tensor(key, CPU), base, 11, 3, 8)
    for k, b in enumerate(base.tolist()):
        pairs = cpu.normals(np.uint64(key), 3, b * 6)
        assert np.array_equal(bits(found[k]), np.concatenate([pairs[0], pairs[1, :2]]).view(np.uint32))
