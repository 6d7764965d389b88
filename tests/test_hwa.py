"""The torch physics of hardware-aware training against the Numba kernels."""

import numpy as np
import pytest
import torch

from xbarsim.config import ChipConfig
from xbarsim.crossbar.tile import TileArray
from xbarsim.models.hwa import hwa_matmul

REPEATS = 4000


def _setup(seed=0, n_out=12, n_in=150):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
    x = rng.standard_normal(n_in).astype(np.float32)
    return w, x


@pytest.mark.parametrize("read_noise", [{"kind": "additive", "sigma": 0.5}, {"kind": "pcm", "scale": 2.0, "time": "per_read"}])
def test_read_and_output_noise_variance_matches_the_kernels(read_noise):
    cfg = ChipConfig.preset("ideal").with_values({"device.read_noise": read_noise, "tile.out_noise": 0.02, "tile.rows": 64,
                                                   "tile.dac": {"bits": 8, "range": "dynamic"}})  # fmt: skip
    w, x = _setup()
    kernel = TileArray.from_weights(w, cfg, seed=0).mvm(np.repeat(x[None], REPEATS, 0)).astype(np.float64)
    torch.manual_seed(0)
    with torch.no_grad():
        torch_out = hwa_matmul(torch.from_numpy(np.repeat(x[None], REPEATS, 0)), torch.from_numpy(w), cfg).numpy().astype(np.float64)
    np.testing.assert_allclose(torch_out.mean(0), kernel.mean(0), atol=5 * np.sqrt(kernel.var(0).max() / REPEATS))
    ratio = torch_out.var(0) / kernel.var(0)
    assert abs(ratio.mean() - 1) < 0.03
    assert np.all(np.abs(ratio - 1) < 6 * np.sqrt(4 / REPEATS))


def test_write_noise_spread_matches_programmed_chips():
    cfg = ChipConfig.preset("ideal").with_values({"device.write_noise": {"kind": "pcm"}, "tile.rows": 64})
    w, x = _setup(1, n_out=6, n_in=80)
    chips = np.stack([TileArray.from_weights(w, cfg, seed=s).mvm(x) for s in range(600)]).astype(np.float64)
    torch.manual_seed(1)
    with torch.no_grad():  # one freshly programmed chip per forward
        torch_out = np.stack([hwa_matmul(torch.from_numpy(x[None]), torch.from_numpy(w), cfg)[0].numpy() for _ in range(600)])
    ratio = torch_out.astype(np.float64).var(0) / chips.var(0)
    assert abs(ratio.mean() - 1) < 0.1


def test_ideal_chip_is_exact_and_gradients_flow():
    cfg = ChipConfig.preset("ideal").with_values({"tile.rows": 50, "tile.cols": 7})
    w, x = _setup(2)
    wt = torch.from_numpy(w).requires_grad_(True)
    xt = torch.from_numpy(np.repeat(x[None], 3, 0))
    y = hwa_matmul(xt, wt, cfg)
    torch.testing.assert_close(y, xt @ wt.T, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    torch.testing.assert_close(wt.grad, xt.sum(0).expand_as(wt), rtol=1e-4, atol=1e-4)
