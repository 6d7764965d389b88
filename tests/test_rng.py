import numpy as np
import pytest
from scipy import stats

from xbarsim.crossbar.truth import reference
from xbarsim.crossbar.laws import readnormals, rng


def test_numba_normals_equal_the_numpy_reference_bit_for_bit():
    for seed, purpose, index in [(0, 1, 0), (7, 4, 3), (2**40, 6, 11)]:
        key = rng.stream_key(seed, purpose, index)
        z = rng.normals(key, 50_000)
        z0, z1 = reference.normal_pairs(key, np.arange(50_000, dtype=np.uint64))
        assert np.array_equal(z[0], z0) and np.array_equal(z[1], z1)


@pytest.fixture(scope="module", params=["version 1", "version 2"])
def many_normals(request):
    """10^7 normals of noise stream version 1 (rng: programming, drift, per-epoch reads) or 2
    (readnormals: every per-read draw), float64."""
    normals = rng.normals if request.param == "version 1" else readnormals.normals
    return normals(rng.stream_key(123, rng.PURPOSE_READ), 5_000_000).ravel().astype(np.float64)


def test_normal_moments(many_normals):
    z = many_normals
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / n)


def test_normals_pass_kolmogorov_smirnov(many_normals):
    assert stats.kstest(many_normals, "norm").pvalue > 1e-3


@pytest.mark.parametrize("threshold", [2.0, 3.0, 4.0, 4.5, 5.0])
def test_normal_tail_frequencies(many_normals, threshold):
    expected = 2 * stats.norm.sf(threshold) * many_normals.size
    observed = np.count_nonzero(np.abs(many_normals) > threshold)
    assert abs(observed - expected) < 5 * np.sqrt(expected) + 1


def test_normals_never_exceed_the_radius_cap(many_normals):
    assert np.abs(many_normals).max() <= np.sqrt(2 * 32 * np.log(2)) + 1e-5


def test_pair_members_and_neighbours_are_uncorrelated():
    z = rng.normals(rng.stream_key(5, 1), 1_000_000).astype(np.float64)
    bound = 5 / np.sqrt(z.shape[1])
    assert abs(np.corrcoef(z[0], z[1])[0, 1]) < bound
    assert abs(np.corrcoef(z[0, :-1], z[0, 1:])[0, 1]) < bound
    assert abs(np.corrcoef(z[0] ** 2, z[1] ** 2)[0, 1]) < bound  # Box-Muller pairs are independent, not just uncorrelated


def test_uniforms_are_uniform_and_match_their_hash():
    key = rng.stream_key(9, rng.PURPOSE_FAULT)
    u = rng.uniforms(key, 200_000)
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
    h = reference.hash64(key, np.arange(200_000, dtype=np.uint64))
    assert np.array_equal(u[0], (h >> np.uint64(32)).astype(np.float64) * 2.0**-32)


def test_streams_differ_by_seed_purpose_and_index():
    keys = {rng.stream_key(s, p, i) for s in range(3) for p in range(1, 7) for i in range(4)}
    assert len(keys) == 3 * 6 * 4
    a = rng.normals(rng.stream_key(1, 4, 0), 100_000)[0]
    b = rng.normals(rng.stream_key(1, 4, 1), 100_000)[0]
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(a.size)


def test_negative_stream_inputs_are_refused():
    with pytest.raises(ValueError, match="seed, purpose and index >= 0"):
        rng.stream_key(-1, 1)
