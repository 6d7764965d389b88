"""Device physics against its formulas, with fixed seeds and tolerances a wrong factor fails."""

import numpy as np
import pytest

from xbarsim.config import DeviceConfig
from xbarsim.crossbar.laws import device

N_IN, N_OUT = 1000, 1000  # two million devices


def _targets(low, high, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (2, N_IN, N_OUT)).astype(np.float32)


def _standardized_error(dev, g_target, expected_std, seed=1):
    g, _ = device.program(g_target, dev, seed)
    return (g.astype(np.float64) - g_target) / expected_std


@pytest.mark.parametrize(
    "noise, expected",
    [
        ({"kind": "absolute", "sigma": 0.5}, lambda g: np.full_like(g, 0.5)),
        ({"kind": "proportional", "sigma": 0.05}, lambda g: 0.05 * g),
        ({"kind": "pcm"}, lambda g: 0.26348 + 1.9650 * (g / 25) - 1.1731 * (g / 25) ** 2),
    ],
)
def test_programming_error_spread_matches_the_formula(noise, expected):
    dev = DeviceConfig(g_min_us=0, g_max_us=25, write_noise=noise)
    g_target = _targets(5, 25)  # far enough from 0 that clipping never happens
    e = _standardized_error(dev, g_target, expected(g_target.astype(np.float64)))
    assert abs(e.mean()) < 5 / np.sqrt(e.size)
    assert abs(e.std() - 1) < 0.005


def test_programming_clips_at_zero():
    dev = DeviceConfig(write_noise={"kind": "absolute", "sigma": 2.0})
    g, _ = device.program(np.zeros((2, 100, 100), np.float32), dev, 3)
    assert g.min() == 0 and 0.45 < np.mean(g == 0) < 0.55


def test_stuck_at_fractions():
    dev = DeviceConfig(g_min_us=1, g_max_us=100, faults={"p_on": 0.01, "p_off": 0.02})
    g, stuck = device.program(_targets(10, 90), dev, 4)
    n = stuck.size
    for code, p, value in [(device.STUCK_ON, 0.01, 100.0), (device.STUCK_OFF, 0.02, 1.0)]:
        frac = np.mean(stuck == code)
        assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / n)
        assert np.all(g[stuck == code] == value)


def test_lognormal_drift_moments():
    sigma, per_decade, t, t0 = 0.3, 0.1, 2000.0, 20.0
    dev = DeviceConfig(t0_s=t0, drift={"kind": "lognormal", "sigma": sigma, "sigma_per_decade": per_decade})
    g_prog = _targets(5, 20)
    ratio = device.drifted(g_prog, np.zeros(g_prog.shape, np.int8), dev, t, 5).astype(np.float64) / g_prog
    s = sigma + per_decade * np.log10((t + t0) / t0)
    assert abs(np.log(ratio).std() / s - 1) < 0.005
    assert abs(ratio.mean() / np.exp(s**2 / 2) - 1) < 0.002
    assert abs(ratio.var() / ((np.exp(s**2) - 1) * np.exp(s**2)) - 1) < 0.02


def test_power_law_drift_median():
    nu_mean, t, t0 = 0.05, 86400.0, 20.0
    dev = DeviceConfig(t0_s=t0, drift={"kind": "power_law", "nu_mean": nu_mean, "nu_std": 0.01})
    g_prog = _targets(5, 20)
    ratio = device.drifted(g_prog, np.zeros(g_prog.shape, np.int8), dev, t, 6).astype(np.float64) / g_prog
    assert abs(np.median(ratio) / ((t + t0) / t0) ** -nu_mean - 1) < 1e-3
    nu = -np.log(ratio) / np.log((t + t0) / t0)
    assert abs(nu.std() / 0.01 - 1) < 0.01


def test_pcm_drift_exponent_at_full_conductance():
    # g = 1: mu = clip(0.0244, 0.049, 0.1) = 0.049, sd = clip(-0.0059, 0.008, 0.045) = 0.008
    dev = DeviceConfig(drift={"kind": "pcm"})
    g_prog = np.full((2, 500, 1000), 25.0, np.float32)
    t = 3600.0
    ratio = device.drifted(g_prog, np.zeros(g_prog.shape, np.int8), dev, t, 7).astype(np.float64) / 25.0
    nu = -np.log(ratio) / np.log((t + 20) / 20)
    assert abs(np.median(nu) / 0.049 - 1) < 0.005
    assert abs(nu.std() / 0.008 - 1) < 0.02


def test_drift_is_one_trajectory_and_spares_stuck_devices():
    dev = DeviceConfig(drift={"kind": "pcm"}, faults={"p_on": 0.05})
    g_prog, stuck = device.program(_targets(5, 20)[:, :50], dev, 8)
    early = device.drifted(g_prog, stuck, dev, 100.0, 8)
    late = device.drifted(g_prog, stuck, dev, 1e6, 8)
    moving = stuck == 0
    assert np.all(late[moving] <= early[moving]) and np.all(early[moving] <= g_prog[moving])
    assert np.array_equal(late[~moving], g_prog[~moving])
    with pytest.raises(ValueError, match="drift time"):
        device.drifted(g_prog, stuck, dev, -1.0, 8)


def test_pcm_read_noise_matches_the_published_levels():
    dev = DeviceConfig(read_noise={"kind": "pcm", "time": "per_read"})
    g = np.full((2, 1, 1), 25.0, np.float32)
    fresh = device.read_noise_std(g, dev, 0.0)[0, 0, 0] / 25.0
    one_day = device.read_noise_std(g, dev, 86400.0)[0, 0, 0] / 25.0
    # IBM's PCM model: about 3.7% of g_max right after programming, 4.5% after one day
    assert fresh == pytest.approx(0.0088 * np.sqrt(np.log((20 + 250e-9) / 500e-9)), rel=1e-5)
    assert round(float(fresh), 3) == 0.037 and round(float(one_day), 3) == 0.045


def test_read_noise_std_per_model():
    g = np.array([[[0.0, 10.0]], [[5.0, 25.0]]], np.float32)
    assert np.all(device.read_noise_std(g, DeviceConfig(read_noise={"kind": "additive", "sigma": 0.3}), 0.0) == np.float32(0.3))
    assert np.allclose(device.read_noise_std(g, DeviceConfig(read_noise={"kind": "proportional", "sigma": 0.1}), 0.0), 0.1 * g)
    assert device.read_noise_is_constant(DeviceConfig(read_noise={"kind": "additive", "sigma": 0.3}))
    assert not device.read_noise_is_constant(DeviceConfig(read_noise={"kind": "pcm", "time": "per_read"}))
