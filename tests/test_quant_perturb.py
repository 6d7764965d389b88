import pytest
import torch
from torch import nn

from xbarsim.models import zoo
from xbarsim.models.perturb import LogNormalPerturbation, WeightNoise
from xbarsim.models.quant import QATConfig, QuantizationAware, fake_quantize


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [4, 8, 16])
def test_fake_quantization_grid_and_straight_through(bits, symmetric):
    torch.manual_seed(0)
    r = (torch.randn(5000) * 3).requires_grad_(True)
    low, high = r.detach().min(), r.detach().max()
    q = fake_quantize(r, low, high, bits, symmetric)
    levels = torch.unique(q.detach())
    assert len(levels) <= (2**bits - 1 if symmetric else 2**bits)
    assert torch.equal(fake_quantize(q.detach(), low, high, bits, symmetric), q.detach())  # exact on the grid
    step = (torch.maximum(high.abs(), low.abs()) / (2 ** (bits - 1) - 1)) if symmetric else (high - low) / (2**bits - 1)
    assert (q.detach() - r.detach()).abs().max() <= step / 2 * 1.001 + 1e-6 * (high - low)  # float32 rounding
    q.sum().backward()
    assert torch.equal(r.grad, torch.ones_like(r))


def test_weights_are_quantized_per_channel_for_conv_and_per_tensor_for_linear():
    torch.manual_seed(1)
    model = zoo.build("lenet5", image_size=8)
    with torch.no_grad():
        model.features[0].weight[0] *= 100  # one big channel must not coarsen the others
    originals = {n: p.detach().clone() for n, p in model.named_parameters()}
    with QuantizationAware(model, QATConfig(bits=4)):
        conv = model.features[0].weight.detach()
        linear = model.classifier[1].weight.detach()
        assert all(len(torch.unique(conv[c])) <= 15 for c in range(conv.shape[0]))
        assert (conv[1:] - originals["features.0.weight"][1:]).abs().max() < originals["features.0.weight"][1:].abs().max() / 7
        assert len(torch.unique(linear)) <= 15
    assert all(torch.equal(p, originals[n]) for n, p in model.named_parameters())  # removal keeps the floats


def test_activation_scale_constant_clips_and_dynamic_follows_each_map():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).eval()
    x = torch.randn(8, 4) * 10
    with torch.no_grad():
        with QuantizationAware(model, QATConfig(8, True, "const:1")):
            const = model(x)
        with QuantizationAware(model, QATConfig(8, True, "dynamic")):
            dynamic = model(x)
    assert const.max() <= 1.0 and dynamic.max() > 1.0
    with pytest.raises(ValueError, match="'dynamic' or 'const"):
        QATConfig(8, True, "fixed")
    with pytest.raises(ValueError, match="bits must be 2..16"):
        QATConfig(1)


def test_weight_noise_follows_the_per_layer_range():
    torch.manual_seed(3)
    model = zoo.build("mlp")
    w = model.net[1].weight.detach().clone()
    with WeightNoise(model, 0.05):
        draws = torch.stack([model.net[1].weight.detach() - w for _ in range(20)])
    assert draws.std().item() == pytest.approx(0.05 * (w.max() - w.min()).item(), rel=0.02)
    assert torch.equal(model.net[1].weight, w)


def test_lognormal_perturbation_is_fixed_per_trial_and_covers_every_parameter():
    torch.manual_seed(4)
    model = zoo.build("vgg11", in_channels=1, image_size=8, width=0.25)
    names = [(m, p) for m, module in model.named_modules() for p, _ in module.named_parameters(recurse=False)]
    values = lambda: {(m, p): getattr(model.get_submodule(m), p).detach().clone() for m, p in names}  # noqa: E731
    originals = values()
    assert ("features.1", "weight") in originals and ("features.1", "bias") in originals  # BN affine too
    with LogNormalPerturbation(model, 0.2) as perturbation:
        first = values()
        assert all(torch.equal(v, first[k]) for k, v in values().items())  # fixed until resampled
        logs = torch.cat([torch.log(first[k] / v).flatten() for k, v in originals.items() if v.abs().min() > 0])
        assert logs.std().item() == pytest.approx(0.2, rel=0.02)
        perturbation.resample()
        assert not torch.equal(model.features[0].weight.detach(), first[("features.0", "weight")])
    assert all(torch.equal(v, originals[k]) for k, v in values().items())
