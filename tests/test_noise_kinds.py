"""Each kind of noise of `xbarsim robustness` acts at its own place, and nowhere else."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from xbarsim.cli import main
from xbarsim.config import ChipConfig
from xbarsim.errors import XbarsimError
from xbarsim.models import zoo
from xbarsim.models.checkpoint import save_checkpoint
from xbarsim.sweeps.metrics import noise_curve
from xbarsim.sweeps.noise_kinds import (
    ActivationNoise, BayesFTNoise, ChipNoise, GateNoiseKind, WeightNoiseKind, parse_noise_kind, scaled_device_noise,
)  # fmt: skip


class FrontEndLSTM(nn.Module):
    """Feed-forward layers before and after a recurrent one: (batch, steps, 6) -> (batch, 4)."""

    def __init__(self):
        super().__init__()
        self.front = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.rnn = nn.LSTM(8, 12, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        out, _ = self.rnn(self.front(x))
        return self.head(out[:, -1])


def _outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every layer's output (the first element of a recurrent layer's tuple); a parametrized
    layer is still a layer."""
    seen, handles = {}, []
    for name, module in model.named_modules():
        if "parametrizations" in name.split("."):
            continue
        if name and not [c for c, _ in module.named_children() if c != "parametrizations"]:
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: seen.__setitem__(name, (o[0] if isinstance(o, tuple) else o).detach().clone())))  # fmt: skip
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return seen


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_gate_noise_changes_the_recurrent_layer_only():
    torch.manual_seed(0)
    model = FrontEndLSTM().eval()
    x = torch.randn(16, 5, 6)
    clean = _outputs(model, x)
    for kind in (GateNoiseKind(), GateNoiseKind(relative=True)):
        with kind.applied(model) as at:
            noisy = _outputs(at(0.5, 1), x)
        assert torch.equal(noisy["front.0"], clean["front.0"]) and torch.equal(noisy["front.1"], clean["front.1"])
        assert not torch.allclose(noisy["rnn"], clean["rnn"], atol=1e-3)
        assert not torch.allclose(noisy["head"], clean["head"], atol=1e-3)
    assert all(torch.equal(v, clean[k]) for k, v in _outputs(model, x).items())  # gone again


def test_gate_noise_is_refused_for_a_feed_forward_network():
    with pytest.raises(XbarsimError, match="gate noise does not apply.*no LSTM, GRU or RNN"):
        with GateNoiseKind().applied(zoo.build("mlp")):
            pass


@pytest.mark.parametrize("build", [lambda: zoo.build("mlp"), lambda: zoo.build("lenet5", image_size=8), FrontEndLSTM])
def test_weight_noise_changes_weights_only_and_is_removed(build):
    """Every activation under weight noise is what the clean network computes when given the
    same (noisy) weights; the noise has the right size, is held for a repeat, and goes away."""
    torch.manual_seed(1)
    model = build().eval()
    x = torch.randn(8, 5, 6) if isinstance(model, FrontEndLSTM) else torch.rand(8, 1, 8, 8)
    before, clean = _state(model), _outputs(model, x)
    eta = 0.05
    with WeightNoiseKind().applied(model) as at:
        noisy_model = at(eta, 7)
        noisy = _outputs(noisy_model, x)
        assert all(torch.equal(v, noisy[k]) for k, v in _outputs(noisy_model, x).items())  # held for the repeat
        weights = {name: getattr(model.get_submodule(name.rpartition(".")[0]), name.rpartition(".")[2]).detach().clone()
                   for name in before if "weight" in name}  # fmt: skip
    assert before.keys() == _state(model).keys() and all(torch.equal(v, before[k]) for k, v in _state(model).items())
    twin = copy.deepcopy(model)
    twin.load_state_dict({**before, **weights})
    assert all(torch.equal(v, noisy[k]) for k, v in _outputs(twin, x).items())
    for name, w in weights.items():
        delta = (w - before[name]) / (before[name].max() - before[name].min())
        assert delta.std().item() == pytest.approx(eta, rel=0.25 if delta.numel() < 500 else 0.1)
    biases = [k for k in before if "bias" in k]
    assert biases and all(torch.equal(_state(model)[k], before[k]) for k in biases)
    assert not torch.allclose(noisy["rnn" if "rnn" in noisy else max(noisy)], clean["rnn" if "rnn" in clean else max(clean)])


def test_bayesft_perturbs_every_parameter_but_not_batchnorm_statistics():
    torch.manual_seed(2)
    model = zoo.build("vgg11", in_channels=1, image_size=8, width=0.25)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, 1, 8, 8))  # running statistics away from their defaults
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # no zero BatchNorm bias: every value must move
    model.eval()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    assert any("running_mean" in n for n in buffers)
    sigma = 0.3
    with BayesFTNoise().applied(model) as at:
        at(sigma, 5)
        perturbed = {n: getattr(model.get_submodule(n.rpartition(".")[0]), n.rpartition(".")[2]).detach().clone() for n in params}
        now_buffers = {n: b.clone() for n, b in model.named_buffers() if "parametrizations" not in n}
    assert now_buffers.keys() == buffers.keys() and all(torch.equal(now_buffers[n], b) for n, b in buffers.items())
    logs = []
    for name, p in params.items():
        assert torch.all(perturbed[name] != p), name
        assert torch.all(torch.sign(perturbed[name]) == torch.sign(p))  # a positive factor
        logs.append(torch.log(perturbed[name] / p).flatten())
    assert torch.cat(logs).std().item() == pytest.approx(sigma, rel=0.03)
    assert all(torch.equal(p, params[n]) for n, p in model.named_parameters())


def test_scaled_device_noise_multiplies_each_noise_model():
    pcm = scaled_device_noise(ChipConfig.preset("pcm"), 2.5)
    assert pcm.device.write_noise.scale == 2.5 and pcm.device.read_noise.scale == 2.5
    assert pcm.device.drift == ChipConfig.preset("pcm").device.drift
    rram = scaled_device_noise(ChipConfig.preset("rram"), 3.0)
    assert rram.device.write_noise.sigma == pytest.approx(0.15) and rram.device.read_noise.sigma == pytest.approx(0.06)
    with pytest.raises(XbarsimError, match="no device write or read noise"):
        scaled_device_noise(ChipConfig.preset("ideal"), 2.0)
    with pytest.raises(XbarsimError, match="write_noise.*sigma"):
        scaled_device_noise(ChipConfig.preset("rram"), 1000.0)
    hwa = scaled_device_noise(ChipConfig.preset("aihwkit-hwa"), 2.0)  # each part of a combined read noise
    assert [part.scale if part.kind == "pcm" else part.sigma for part in hwa.device.read_noise.parts] == [2.0, 0.035]
    assert scaled_device_noise(ChipConfig.preset("aihwkit-hwa"), 1.0) == ChipConfig.preset("aihwkit-hwa")


def test_chip_noise_scale_scales_the_chips_error():
    """On the gaussian preset (additive device noise, ideal converters) the chip's error from
    the float network is zero at scale 0 and grows in proportion to the scale."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(64, 128)).eval()
    x = torch.rand(64, 64)
    with torch.no_grad():
        exact = model(x)
        with ChipNoise("gaussian").applied(model) as at:
            errors = {s: (at(s, 11)(x) - exact) for s in (0.0, 1.0, 2.0, 4.0)}
    assert errors[0.0].abs().max().item() < 1e-4
    base = errors[1.0].std().item()
    assert base > 1e-3
    assert errors[2.0].std().item() / base == pytest.approx(2.0, rel=0.1)
    assert errors[4.0].std().item() / base == pytest.approx(4.0, rel=0.1)


@pytest.mark.parametrize("kind", [ActivationNoise(), GateNoiseKind(), WeightNoiseKind(), BayesFTNoise(), ChipNoise("pcm")],
                         ids=lambda k: type(k).__name__)  # fmt: skip
def test_noise_curves_are_seeded_and_leave_the_model_as_it_was(kind):
    torch.manual_seed(4)
    model = FrontEndLSTM().eval()
    x, y = torch.randn(64, 5, 6), torch.randint(0, 4, (64,))
    before, clean = _state(model), model(x).detach()
    sigmas = [0.1, 1.0, 10.0]
    first = noise_curve(model, x, y, sigmas, repeats=2, noise=kind, seed=9)
    again = noise_curve(model, x, y, sigmas, repeats=2, noise=kind, seed=9)
    other = noise_curve(model, x, y, sigmas, repeats=2, noise=kind, seed=10)
    assert np.array_equal(first.accuracies, again.accuracies)
    assert not np.array_equal(first.accuracies, other.accuracies)
    assert all(torch.equal(v, before[k]) for k, v in _state(model).items()) and torch.equal(model(x).detach(), clean)


def test_parse_noise_kind_and_its_errors():
    assert parse_noise_kind("activation", "both", "a,b") == ActivationNoise("both", ("a", "b"))
    assert parse_noise_kind("gate:relative") == GateNoiseKind(relative=True)
    assert parse_noise_kind("chip:pcm") == ChipNoise("pcm")
    for text, message in [("gaussian", "unknown noise kind"), ("gate:loud", "unknown noise kind"), ("chip:", "unknown noise kind")]:
        with pytest.raises(XbarsimError, match=message):
            parse_noise_kind(text)
    with pytest.raises(XbarsimError, match="--mode and --where apply to activation noise only"):
        parse_noise_kind("weight", mode="additive")


def test_cli_names_the_noise_and_refuses_gate_noise_on_a_feed_forward_network(tmp_path, capsys):
    torch.manual_seed(5)
    path = tmp_path / "mlp.pt"
    save_checkpoint(zoo.build("mlp"), path)
    assert main(["robustness", str(path), "--noise", "gate", "--sigmas", "0.1,0.3,1,3,10", "--repeats", "1"]) == 2
    assert "gate noise does not apply" in capsys.readouterr().err
    args = ["robustness", str(path), "--noise", "weight", "--sigmas", "0.01,0.03,0.1,0.3,1", "--repeats", "2", "--plot", str(tmp_path / "w.png")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "weight noise (Noisy Machines)" in out and "midpoint eta (weight)" in out and (tmp_path / "w.png").is_file()
