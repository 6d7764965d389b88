"""The torch backend draws the very numbers of ``crossbar.laws.rng``, bit for bit (int64 hash, float32 Box-Muller)."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xbarsim.crossbar.laws import rng
from xbarsim.crossbar.truth import reference
from xbarsim.crossbar_torch import readnormals
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


def test_version_2_normals_are_version_1_up_to_fused_roundings_and_standard():
    """The same hash and the same polynomials: version 2 moves a normal by at most 2 ulps, and some do move;
    200,000 pairs are N(0, 1) (5-sigma bounds on mean, variance, skew, kurtosis), the pair uncorrelated."""
    key = trng.key_tensor(rng.stream_key(7, rng.PURPOSE_OUTPUT, 1), CPU)
    counters = trng.counters(2**40, 200_000, CPU)
    v1, v2 = torch.cat(trng.normal_pairs(key, counters)), torch.cat(readnormals.normal_pairs_v2(key, counters))
    ulp = torch.nextafter(v1.abs(), torch.tensor(np.inf)) - v1.abs()
    assert float(((v2 - v1).abs() / ulp).max()) <= 2 and 0.001 < float((v2 != v1).float().mean()) < 0.05
    z = v2.double()
    n = len(z)
    assert abs(float(z.mean())) < 5 / n**0.5 and abs(float(z.var()) - 1) < 5 * (2 / n) ** 0.5
    assert abs(float((z**3).mean())) < 5 * (15 / n) ** 0.5 and abs(float((z**4).mean()) - 3) < 5 * (96 / n) ** 0.5
    assert abs(float((z[: n // 2] * z[n // 2 :]).mean())) < 5 / (n / 2) ** 0.5


@pytest.mark.parametrize("version", [1, 2])
def test_rereads_draw_the_documented_counters(version, monkeypatch):
    """A tile of width 5 at columns 3..8 of 11 outputs: version 1 the first normal of base * 11 + column;
    version 2 the first normals of base * 6 + 0..2, then the second normals of base * 6 + 0..1."""
    monkeypatch.setattr(readnormals, "READ_STREAM_VERSION", version)
    key = trng.key_tensor(rng.stream_key(2, rng.PURPOSE_BM_READ, 0), CPU)
    base = torch.tensor([5, 900], dtype=torch.int64)
    found = readnormals.reread_output_normals(key, base, 11, 3, 8)
    for k, b in enumerate(base.tolist()):
        if version == 1:
            expected, _ = trng.normal_pairs(key, torch.arange(3, 8) + b * 11)
        else:
            first, second = readnormals.normal_pairs_v2(key, torch.arange(3) + b * 6)
            expected = torch.cat([first, second[:2]])
        assert torch.equal(found[k], expected)


def test_version_2_equals_the_cpu_kernels_bit_for_bit():
    """Once the CPU's read kernels draw noise stream version 2 (``crossbar.laws.readnormals``)."""
    cpu = pytest.importorskip("xbarsim.crossbar.laws.readnormals", reason="the CPU kernels draw version 1 here")
    key = rng.stream_key(3, rng.PURPOSE_READ, 2)
    for first in (0, 2**63 + 5, 2**64 - 300):
        expected = cpu.normals(np.uint64(key), 5000, first)
        found = torch.stack(readnormals.normal_pairs_v2(trng.key_tensor(key, CPU), trng.counters(trng._signed(first), 5000, CPU)))
        assert np.array_equal(bits(found), expected.view(np.uint32))
