"""The fused device-law kernels (lawkernels) equal the NumPy formulas of ``device`` bit for bit, law by law."""

import numpy as np
import pytest

from xbarsim.config import DeviceConfig
from xbarsim.crossbar.laws import device, rng

G_MAX = 25.0


def conductances(seed: int, pairs: int = 3000) -> np.ndarray:
    """(2, pairs) float32 in [0, g_max], with exact zeros, tiny values, g_max and a spread of magnitudes."""
    r = np.random.default_rng(seed)
    g = (r.random((2, pairs)) * G_MAX).astype(np.float32)
    g *= (r.random((2, pairs)) < 0.8).astype(np.float32)  # ~20% exactly 0
    g[0, :40] = np.float32(10.0) ** r.uniform(-12, 1, 40).astype(np.float32)
    g[1, :5] = [G_MAX, 1e-38, 1e-7 * G_MAX, 0.0, 2.5e-6]
    return g


def same_bits(found: np.ndarray, expected: np.ndarray) -> bool:
    return found.dtype == expected.dtype == np.float32 and np.array_equal(found.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("noise", [{"kind": "pcm"}, {"kind": "pcm", "scale": 2.5, "c2": -3.0}, {"kind": "absolute", "sigma": 0.7},
                                   {"kind": "proportional", "sigma": 0.1}, {"kind": "absolute", "sigma": 0.0}])  # fmt: skip
def test_programming_equals_the_numpy_formula(noise):
    dev = DeviceConfig(g_max_us=G_MAX, write_noise=noise)
    target = conductances(1)
    z = device.device_normals(9, rng.PURPOSE_WRITE, target.shape, first=100)
    std = device.write_noise_std(target, dev.write_noise, G_MAX)
    expected = np.maximum(target + (std * z).astype(np.float32), np.float32(0.0))
    g, stuck = device._program_pairs(target, dev, 9, 100)
    assert same_bits(g, expected) and not stuck.any()


@pytest.mark.parametrize("drift", [{"kind": "pcm"}, {"kind": "pcm", "scale": 3.0}, {"kind": "power_law", "nu_mean": 0.05, "nu_std": 0.04},
                                   {"kind": "lognormal", "sigma": 0.1, "sigma_per_decade": 0.05}])  # fmt: skip
@pytest.mark.parametrize("t_s", [1.0, 3600.0, 3.15e9])
def test_drift_equals_the_numpy_formula(drift, t_s):
    dev = DeviceConfig(g_max_us=G_MAX, drift=drift)
    g_prog = conductances(2)
    stuck = np.zeros(g_prog.shape, np.int8)
    stuck[:, 7::50] = device.STUCK_ON
    expected = (g_prog * device.drift_factor(g_prog, dev, t_s, 4, first=55)).astype(np.float32)
    expected[stuck != 0] = g_prog[stuck != 0]
    assert same_bits(device._drifted_pairs(g_prog, stuck, dev, t_s, 4, 55), expected)


@pytest.mark.parametrize("read_noise", [
    {"kind": "pcm", "time": "per_epoch"},
    {"kind": "pcm", "time": "per_epoch", "q_exponent": 0.5, "scale": 1.7},  # 0.5: NumPy's pow takes its sqrt path
    {"kind": "pcm", "time": "per_epoch", "q_exponent": 0.0},  # 0^0 = 1 at the devices programmed to 0
    {"kind": "additive", "sigma": 0.3, "time": "per_epoch"},
    {"kind": "proportional", "sigma": 0.05, "time": "per_epoch"},
    {"kind": "combined", "parts": [{"kind": "pcm", "time": "per_epoch"}, {"kind": "additive", "sigma": 0.2, "time": "per_epoch"},
                                   {"kind": "pcm", "time": "per_epoch", "q_exponent": 2.0}, {"kind": "additive", "sigma": 0.4}]},
])  # fmt: skip
@pytest.mark.parametrize("t_s", [0.0, 86400.0])
def test_per_epoch_read_noise_equals_the_numpy_formula(read_noise, t_s):
    dev = DeviceConfig(g_max_us=G_MAX, read_noise=read_noise)
    g_prog = conductances(3)
    g = (g_prog * np.float32(0.9)).astype(np.float32)
    g[0, 100:200] = 0.0  # drifted or read to 0 while programmed above it
    z = device.device_normals(6, rng.PURPOSE_READ_EPOCH, g.shape, 2, 0)
    std = device.read_noise_std(g, dev, t_s, g_prog, "per_epoch")
    expected = np.maximum(g + std * z, np.float32(0.0))
    assert same_bits(device.epoch_conductances(g, g_prog, dev, t_s, 6, 2), expected)
