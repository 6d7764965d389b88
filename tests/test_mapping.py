import pytest
import torch
from torch import nn

from xbarsim import ChipConfig, map_model
from xbarsim.mapping.layers import AnalogConv1d, AnalogConv2d, AnalogGRU, AnalogLinear, AnalogLSTM, AnalogRNN
from xbarsim.models import zoo


def _randomize_batchnorm(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(3, 16, 5, stride=2, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 8, 3, padding="same", dilation=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 20, 5),
        )  # fmt: skip

    def forward(self, x):
        return self.body(x)


class GroupedDilated(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 12, 3, stride=(2, 1), padding=(2, 1), dilation=2, groups=2)
        self.b = nn.Conv2d(12, 12, 3, padding="same", groups=12, bias=False)  # depthwise
        self.c = nn.Conv2d(12, 6, 1, padding="valid", groups=3)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


class RNNStack(nn.Module):
    def __init__(self, bias: bool = False):
        super().__init__()
        self.rnn = nn.RNN(6, 10, num_layers=2, nonlinearity="relu", bias=bias)

    def forward(self, x):
        return self.rnn(x)[0]


CASES = {
    "mlp": (lambda: zoo.build("mlp"), (5, 1, 8, 8)),
    "lenet5": (lambda: zoo.build("lenet5", in_channels=3, image_size=32), (4, 3, 32, 32)),
    "vgg11-bn": (lambda: zoo.build("vgg11", image_size=32, batch_norm=True), (2, 3, 32, 32)),
    "resnet18": (lambda: zoo.build("resnet18"), (2, 3, 32, 32)),
    "conv1d": (Conv1dNet, (3, 3, 40)),
    "grouped-dilated": (GroupedDilated, (2, 4, 11, 9)),
    "lstm-2x-bidirectional": (lambda: zoo.build("lstm", input_size=7, hidden_size=20, num_layers=2, bidirectional=True), (3, 6, 7)),
    "gru-2x-bidirectional": (lambda: zoo.build("gru", input_size=7, hidden_size=20, num_layers=2, bidirectional=True), (3, 6, 7)),
    "rnn-relu-no-bias": (RNNStack, (5, 2, 6)),
    "rnn-relu": (lambda: RNNStack(bias=True), (5, 2, 6)),  # the hidden bias joins the input products
}


def _check_close(y: torch.Tensor, ref: torch.Tensor, tol: float = 1e-4):
    assert y.shape == ref.shape
    assert (y - ref).abs().max().item() <= tol * ref.abs().max().item()


@pytest.mark.parametrize("tile", [512, 96], ids=["tile512", "tile96"])
@pytest.mark.parametrize("name", CASES)
def test_ideal_chip_reproduces_the_torch_model(name, tile):
    torch.manual_seed(0)
    build, shape = CASES[name]
    model = _randomize_batchnorm(build())
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = model(x)
        chip = map_model(model, ChipConfig.preset("ideal").with_values({"tile.rows": tile, "tile.cols": tile}))
        _check_close(chip(x), ref)
    assert not any(type(m) in (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LSTM, nn.GRU, nn.RNN) for m in chip.network.modules())
    analog_types = {type(m) for m in chip.network.modules()}
    expected = {"conv1d": AnalogConv1d, "lstm-2x-bidirectional": AnalogLSTM, "gru-2x-bidirectional": AnalogGRU,
                "rnn-relu-no-bias": AnalogRNN, "rnn-relu": AnalogRNN, "mlp": AnalogLinear, "resnet18": AnalogConv2d}.get(name)  # fmt: skip
    assert expected is None or expected in analog_types


def test_results_do_not_depend_on_tile_size_without_noise():
    torch.manual_seed(1)
    model = _randomize_batchnorm(zoo.build("vgg11", in_channels=1, image_size=8, width=0.25))
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        outs = [map_model(model, ChipConfig.preset("ideal").with_values({"tile.rows": r, "tile.cols": c}))(x)
                for r, c in [(512, 512), (64, 32), (37, 100)]]  # fmt: skip
    for out in outs[1:]:
        _check_close(out, outs[0], 1e-5)


def test_folding_gives_torchs_fused_layers_bit_for_bit():
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    from xbarsim.mapping.fold import fold_batchnorm

    torch.manual_seed(3)
    model = _randomize_batchnorm(nn.Sequential(nn.Conv2d(3, 6, 3, bias=False), nn.BatchNorm2d(6), nn.Flatten(),
                                               nn.Linear(6 * 4 * 4, 5), nn.BatchNorm1d(5))).eval()  # fmt: skip
    for bn in (model[1], model[4]):
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    expected = [fuse_conv_bn_eval(model[0], model[1]), fuse_linear_bn_eval(model[3], model[4])]
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) == [("0", "1"), ("3", "4")]
    for layer, fused in zip((folded[0], folded[3]), expected):
        assert torch.equal(layer.weight, fused.weight) and torch.equal(layer.bias, fused.bias)
        assert isinstance(layer.weight, nn.Parameter) and isinstance(layer.bias, nn.Parameter)
    assert isinstance(folded[1], nn.Identity) and isinstance(folded[4], nn.Identity)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5)


def test_batchnorm_is_folded_and_can_be_kept():
    model = _randomize_batchnorm(zoo.build("vgg11", in_channels=1, image_size=8, width=0.25))
    folded = map_model(model, ChipConfig.preset("ideal"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.network.modules())
    assert len(folded.source.folded) == 8
    kept = map_model(model, ChipConfig.preset("ideal").with_values({"mapping.fold_batchnorm": False}))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in kept.network.modules()) == 8
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        _check_close(folded(x), kept(x))


@pytest.mark.parametrize("name, shape", [("gru", (4, 7, 8)), ("lenet5", (3, 1, 8, 8))])
def test_bias_in_rows_equals_digital_bias_on_an_ideal_chip(name, shape):
    torch.manual_seed(2)
    model = zoo.build(name, image_size=8) if name == "lenet5" else zoo.build(name)
    x = torch.randn(*shape)
    chip = map_model(model, ChipConfig.preset("ideal").with_values({"mapping.bias": "rows"}))
    assert all(m.bias_in_rows for m in chip.chip.matrices())
    with torch.no_grad():
        _check_close(chip(x), model(x))


def test_only_selected_layers_are_mapped():
    model = zoo.build("lenet5", image_size=8)
    chip = map_model(model, ChipConfig.preset("pcm"), layers=["features.0", "classifier.5"])
    assert list(chip.chip.layers) == ["features.0", "classifier.5"]
    assert isinstance(chip.network.features[0], AnalogConv2d) and isinstance(chip.network.classifier[5], AnalogLinear)
    assert type(chip.network.classifier[1]) is nn.Linear


def test_unsupported_selected_layer_names_path_and_type():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ConvTranspose2d(2, 2, 3)))
    with pytest.raises(ValueError, match=r"'1.0' of type ConvTranspose2d"):
        map_model(model, ChipConfig.preset("ideal"))
    with pytest.raises(ValueError, match=r"'1.0' of type ConvTranspose2d cannot be mapped"):
        map_model(model, ChipConfig.preset("ideal"), layers=["1.0"])
    with pytest.raises(ValueError, match="no module named 'nope'"):
        map_model(model, ChipConfig.preset("ideal"), layers=["nope"])
    assert list(map_model(model, ChipConfig.preset("ideal"), layers=["0"]).chip.layers) == ["0"]


def test_nan_weights_are_refused_with_the_layer_name():
    model = zoo.build("mlp")
    with torch.no_grad():
        model.net[3].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="layer 'net.3': weights contain NaN or Inf"):
        map_model(model, ChipConfig.preset("pcm"))


def test_nan_inputs_are_refused_with_the_layer_name():
    chip = map_model(zoo.build("mlp"), ChipConfig.preset("pcm"))
    x = torch.randn(2, 1, 8, 8)
    x[1, 0, 3, 3] = float("inf")
    with pytest.raises(ValueError, match="layer 'net.1'.*NaN or Inf"):
        chip(x)


def test_inputs_of_the_wrong_shape_name_the_layer():
    chip = map_model(zoo.build("lenet5", image_size=8), ChipConfig.preset("ideal"))
    with pytest.raises(ValueError, match=r"layer 'features.0' takes 1 input channels in a 2-d input, got shape \(2, 3, 8, 8\)"):
        chip(torch.rand(2, 3, 8, 8))
    mlp = map_model(zoo.build("mlp"), ChipConfig.preset("ideal"))
    with pytest.raises(ValueError, match="layer 'net.1' takes 64 input features"):
        mlp(torch.rand(2, 1, 4, 4))


def test_recurrent_state_and_layouts_match_torch():
    torch.manual_seed(3)
    lstm = nn.LSTM(4, 6, num_layers=2, bidirectional=True).eval()
    chip = map_model(lstm, ChipConfig.preset("ideal"))
    assert isinstance(chip.network, AnalogLSTM)
    x = torch.randn(5, 3, 4)
    h0, c0 = torch.randn(4, 3, 6), torch.randn(4, 3, 6)
    with torch.no_grad():
        (out, (h, c)), (ref, (rh, rc)) = chip(x, (h0, c0)), lstm(x, (h0, c0))
        for a, b in [(out, ref), (h, rh), (c, rc)]:
            _check_close(a, b)
        unbatched, ref_unbatched = chip(x[:, 0])[0], lstm(x[:, 0])[0]  # (steps, features)
        _check_close(unbatched, ref_unbatched)


def test_gradients_flow_through_analog_layers():
    torch.manual_seed(4)
    model = zoo.build("lenet5", image_size=8)
    chip = map_model(model, ChipConfig.preset("ideal"))
    x1 = torch.randn(3, 1, 8, 8, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    model(x1).square().sum().backward()
    chip(x2).square().sum().backward()
    _check_close(x2.grad, x1.grad, 1e-4)


def test_program_and_drift_change_a_noisy_chip_reproducibly():
    model = zoo.build("mlp")
    chip = map_model(model, ChipConfig.preset("pcm"), seed=1)
    x = torch.rand(8, 1, 8, 8)
    weights = [m.effective_weight().clone() for m in chip.chip.matrices()]
    chip.drift(86400)
    assert chip.chip.t_s == 86400
    assert all(not torch.equal(a, m.effective_weight()) for a, m in zip(weights, chip.chip.matrices()))
    chip.program(1)
    assert chip.chip.t_s == 0
    assert all(torch.equal(a, m.effective_weight()) for a, m in zip(weights, chip.chip.matrices()))
    with torch.no_grad():
        assert not torch.equal(chip(x), chip(x))  # fresh read noise every time
    summary = chip.summary()
    assert "net.1" in summary and "total" in summary and str(64 * 256 * 2) in summary.replace(",", "")
