import numpy as np
import pytest
import torch
from torch import nn

from xbarsim.models import zoo
from xbarsim.models.noise import GateNoise, GaussianNoise, inject_noise, noise_sites
from xbarsim.models.recurrent import run_recurrent, shape_of, torch_products


@pytest.mark.parametrize("mode, expected_var", [("additive", lambda x, s: s**2 + 0 * x), ("multiplicative", lambda x, s: (x * s) ** 2),
                                                ("both", lambda x, s: (x * s) ** 2 + s**2)])  # fmt: skip
def test_noise_statistics_and_straight_through_gradient(mode, expected_var):
    torch.manual_seed(0)
    sigma = 0.3
    x = torch.full((200_000,), 2.0, requires_grad=True)
    y = GaussianNoise(sigma, mode)(x)
    assert abs(y.mean().item() - 2.0) < 5 * np.sqrt(expected_var(2.0, sigma) / x.numel())
    assert y.var().item() == pytest.approx(expected_var(2.0, sigma), rel=0.01)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # the noise is not differentiated


@pytest.mark.parametrize("mode", ["additive", "multiplicative", "both"])
def test_masked_scores_stay_masked_under_noise(mode):
    """A causal mask's -inf scores keep -inf (no NaN from inf - inf), and each row's softmax stays a distribution."""
    torch.manual_seed(0)
    scores = torch.randn(4, 6, 6).masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), float("-inf"))
    noisy = GaussianNoise(0.5, mode)(scores)
    masked = torch.isneginf(scores)
    assert torch.equal(torch.isneginf(noisy), masked) and not torch.equal(noisy[~masked], scores[~masked])
    weights = torch.softmax(noisy, dim=-1)
    assert torch.isfinite(weights).all() and torch.allclose(weights.sum(-1), torch.ones(4, 6))


def test_zero_noise_is_exact_and_bad_settings_are_refused():
    x = torch.randn(10)
    assert torch.equal(GaussianNoise(0.0)(x), x)
    with pytest.raises(ValueError, match="noise mode"):
        GaussianNoise(0.1, "pink")
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        GaussianNoise(-1.0)


def test_injection_after_every_module_and_removal():
    model = zoo.build("lenet5", image_size=8).eval()
    sites = noise_sites(model)
    assert len(sites) == 11 and "classifier.0" not in sites  # the Flatten gets none
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        clean = model(x)
        with inject_noise(model, 0.2) as noise:
            assert len(noise.noise) == 11
            assert not torch.equal(model(x), clean)
            noise.set_sigma(0.0)
            assert torch.equal(model(x), clean)
        assert torch.equal(model(x), clean)


def test_quantized_layers_keep_their_noise_sites():
    from xbarsim.models.quant import QATConfig, QuantizationAware

    model = zoo.build("lenet5", image_size=8)
    plain = noise_sites(model)
    with QuantizationAware(model, QATConfig(8)):
        assert noise_sites(model) == plain  # noise goes after the layers, never onto their weights


def test_per_layer_injection_and_unknown_names():
    model = zoo.build("mlp").eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        clean = model(x)
        with inject_noise(model, 0.5, where=["net.5"]):
            noisy = model(x)
    assert not torch.equal(noisy, clean)
    with pytest.raises(ValueError, match="no module named 'net.99'"):
        inject_noise(model, 0.1, where=["net.99"])


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_loop_equals_torch(cell):
    torch.manual_seed(1)
    module = cell(5, 7, num_layers=2, bidirectional=True, batch_first=True).eval()
    x = torch.randn(3, 6, 5)
    with torch.no_grad():
        ours, theirs = run_recurrent(shape_of(module), x, None, torch_products(module)), module(x)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-5, atol=1e-6)


def test_gate_noise_perturbs_every_step_and_can_be_relative():
    torch.manual_seed(2)
    model = zoo.build("lstm", input_size=8, hidden_size=16).eval()
    x = torch.randn(5, 8, 8)
    with torch.no_grad():
        clean = model(x)
        with GateNoise(model, 0.0):
            torch.testing.assert_close(model(x), clean, rtol=1e-5, atol=1e-6)
        with GateNoise(model, 0.3):
            noisy = model(x)
        with GateNoise(model, 0.3, relative=True):
            relative = model(x)
        assert torch.equal(model(x), clean)  # removed
    assert (noisy - clean).abs().max() > 1e-3 and (relative - clean).abs().max() > 1e-3
    x.requires_grad_(True)
    with GateNoise(model, 0.3):
        model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="no LSTM, GRU or RNN"):
        GateNoise(zoo.build("mlp"), 0.1)
