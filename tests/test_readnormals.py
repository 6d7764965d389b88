"""Per-read normals, noise stream version 2 (laws/readnormals.py): the same bits as the NumPy
reference, the radius's tail out to 6.5 sigma, the angle's polynomials, and independent neighbours
(the moments, Kolmogorov-Smirnov and tail frequencies on 10^7 draws: tests/test_rng.py, both versions)."""

from fractions import Fraction

import numpy as np
import pytest
from numba import njit

from xbarsim.crossbar.laws import readnormals, rng
from xbarsim.crossbar.truth import reference


@njit(error_model="numpy")
def _hardware_fma(a, b, c):
    out = np.empty_like(a)
    for k in range(a.shape[0]):
        out[k] = readnormals.fma(a[k], b[k], c[k])
    return out


@njit(error_model="numpy")
def _pairs_from_bits(high, low):
    z = np.empty((2, high.shape[0]), np.float32)
    for k in range(high.shape[0]):
        z[0, k], z[1, k] = readnormals.normal_pair_from_bits(high[k], low[k])
    return z


def _exact_fma(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    """a * b + c rounded once to float32 (nearest, ties to even), from exact rationals."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    guess = np.float32(float(exact))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    distances = [abs(Fraction(float(v)) - exact) for v in candidates]
    best = min(distances)
    tied = [v for v, d in zip(candidates, distances) if d == best]
    return min(tied, key=lambda v: int(np.array(v).view(np.uint32)) & 1)


def test_the_numpy_fma_rounds_once_like_the_hardware():
    gen = np.random.default_rng(0)
    a, b, c = (gen.standard_normal(1_000_000).astype(np.float32) * gen.choice([1e-3, 1, 1e3], 1_000_000).astype(np.float32) for _ in range(3))
    c[:1000] = -(a[:1000] * b[:1000])  # near cancellation: the product's low bits decide
    assert np.array_equal(reference.fma32(a, b, c).view(np.uint32), _hardware_fma(a, b, c).view(np.uint32))
    for k in range(300):
        assert reference.fma32(a[k], b[k], c[k]) == _exact_fma(a[k], b[k], c[k])


@pytest.mark.parametrize("first", [0, 987_654_321, 2**64 - 300])  # the last one wraps mod 2^64
def test_kernel_normals_equal_the_numpy_reference_bit_for_bit(first):
    key = rng.stream_key(4, rng.PURPOSE_READ, 1)
    z = readnormals.normals(key, 200_000, first)
    z0, z1 = reference.read_normal_pairs(key, np.uint64(first) + np.arange(200_000, dtype=np.uint64))
    assert np.array_equal(z[0].view(np.uint32), z0.view(np.uint32)) and np.array_equal(z[1].view(np.uint32), z1.view(np.uint32))


def test_stream_version_2_differs_from_version_1_only_in_the_last_bits():
    key = rng.stream_key(4, rng.PURPOSE_READ, 1)
    new, old = readnormals.normals(key, 100_000), rng.normals(key, 100_000)
    assert not np.array_equal(new, old)
    np.testing.assert_allclose(new, old, rtol=1e-5, atol=1e-6)


def _radius(high: np.ndarray) -> np.ndarray:
    """The generator's radius for these high bits (the angle 0: low = 2^23 << 6 gives cos 1)."""
    return _pairs_from_bits(high.astype(np.uint32), np.full(high.shape, 0x20000000, np.uint32))[0].astype(np.float64)


@pytest.mark.parametrize("t", [1.0, 2.0, 3.0, 4.0, 5.0, 5.5, 6.0, 6.5])
def test_the_radius_tail_is_exp_minus_t_squared_over_two_out_to_6_5_sigma(t):
    """P(r > t) = exp(-t^2 / 2) for Box-Muller's radius: count the 2^31 radii beyond t exactly
    (the radius falls as the high 31 bits grow) and compare with 2^31 exp(-t^2 / 2). With the
    angle uniform (24 bits and the quadrant), the normals' tails follow to 6.5 sigma, where a
    sample of 10^7 would see none."""
    lo, hi = 0, 1 << 31  # the count k of radii > t: radius(k - 1) > t >= radius(k)
    while lo < hi:
        mid = (lo + hi) // 2
        if _radius(np.array([mid << 1]))[0] > t:
            lo = mid + 1
        else:
            hi = mid
    expected = np.exp(-t * t / 2) * 2.0**31
    assert abs(lo - expected) <= max(2.0, 2e-6 * expected)


def test_the_angle_polynomials_match_sin_and_cos_on_every_offset():
    offsets = np.arange(1 << 24, dtype=np.uint32) << np.uint32(6)  # quadrant 0, every angle offset
    z = _pairs_from_bits(np.full(offsets.shape, 1 << 31, np.uint32), offsets).astype(np.float64)  # radius sqrt(2 ln 2)
    radius = np.hypot(z[0], z[1])
    angle = (np.arange(1 << 24) * 2.0**-24 - 0.5) * (np.pi / 2)
    assert np.abs(z[0] / radius - np.cos(angle)).max() < 3e-7 and np.abs(z[1] / radius - np.sin(angle)).max() < 3e-7
    assert np.abs(radius / radius[0] - 1).max() < 3e-7


def test_neighbouring_counters_and_pair_members_are_uncorrelated():
    z = readnormals.normals(rng.stream_key(5, rng.PURPOSE_READ), 2_000_000).astype(np.float64)
    bound = 5 / np.sqrt(z.shape[1])
    for a, b in ((z[0, :-1], z[0, 1:]), (z[1, :-1], z[1, 1:]), (z[0], z[1]), (z[0, :-1] ** 2, z[0, 1:] ** 2), (z[0] ** 2, z[1] ** 2)):
        assert abs(np.corrcoef(a, b)[0, 1]) < bound
