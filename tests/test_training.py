import pytest
import torch

from xbarsim.config import ChipConfig
from xbarsim.models import data, zoo
from xbarsim.models.checkpoint import load_network, save_checkpoint
from xbarsim.models.quant import QATConfig
from xbarsim.models.training import TrainConfig, accuracy, distillation_loss, train


@pytest.fixture(scope="module")
def digits():
    return data.digits()


@pytest.fixture(scope="module")
def teacher(digits):
    model = zoo.build("lenet5", image_size=8)
    train(model, digits, TrainConfig(epochs=6), progress=False)
    return model


MODES = {
    "plain": TrainConfig(epochs=6),
    "noisy": TrainConfig(epochs=8, lr=5e-3, noise_sigma=0.1),  # noise after every module slows the start
    "noisy-multiplicative": TrainConfig(epochs=8, lr=5e-3, noise_sigma=0.1, noise_mode="both"),
    "qat-const": TrainConfig(epochs=6, qat=QATConfig(8, True, "const:1")),
    "qat-dynamic-asymmetric": TrainConfig(epochs=6, qat=QATConfig(4, False, "dynamic")),
    "weight-noise": TrainConfig(epochs=6, weight_noise_eta=0.02),
    "bayesft": TrainConfig(epochs=6, bayesft_sigma=0.1),
    "hwa-pcm": TrainConfig(epochs=6, hwa=ChipConfig.preset("pcm").with_values({"tile.rows": 64, "tile.cols": 64})),
    "everything": TrainConfig(epochs=8, lr=5e-3, noise_sigma=0.05, qat=QATConfig(8), weight_noise_eta=0.01, bayesft_sigma=0.05),
}


@pytest.mark.parametrize("name", MODES)
def test_every_training_mode_lowers_the_loss(digits, name):
    torch.manual_seed(0)
    model = zoo.build("lenet5", image_size=8)
    losses = train(model, digits, MODES[name], progress=False)
    assert losses[-1] < 0.8 * losses[0], losses
    assert accuracy(model, digits.x_test, digits.y_test) > 0.3


def test_distillation_lowers_the_loss_and_matches_its_formula(digits, teacher):
    student = zoo.build("mlp", hidden=(32,))
    losses = train(student, digits, TrainConfig(epochs=6, distill_temperature=2.0, distill_beta=0.5), teacher=teacher, progress=False)
    assert losses[-1] < 0.8 * losses[0]
    z_s, z_t, y = torch.randn(4, 10), torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    assert torch.isclose(distillation_loss(z_s, z_t, y, 1.0, 0.0), torch.nn.functional.cross_entropy(z_s, y))
    same = distillation_loss(z_t, z_t, y, 3.0, 1.0)  # soft CE against itself: the teacher's entropy
    p = torch.softmax(z_t / 3.0, dim=1)
    assert torch.isclose(same, 9.0 * -(p * torch.log(p)).sum(dim=1).mean(), rtol=1e-5)


def test_deep_gate_noise_trains_a_recurrent_net(digits):
    model = zoo.build("gru", input_size=8, hidden_size=32, num_layers=1)
    losses = train(model, digits, TrainConfig(epochs=6, gate_noise_sigma=0.1, gate_noise_relative=True), progress=False)
    assert losses[-1] < 0.8 * losses[0]


def test_qat_models_keep_their_quantizers_through_a_checkpoint(digits, tmp_path):
    model = zoo.build("lenet5", image_size=8)
    train(model, digits, TrainConfig(epochs=2, qat=QATConfig(4, True, "const:2")), progress=False)
    assert model.qat is not None
    save_checkpoint(model, tmp_path / "qat.pt")
    loaded = load_network(tmp_path / "qat.pt")
    with torch.no_grad():
        assert torch.equal(loaded(digits.x_test[:50]), model(digits.x_test[:50]))
    assert len(torch.unique(loaded.features[0].weight.detach()[0])) <= 15


def test_bad_training_settings_name_the_field():
    with pytest.raises(ValueError, match="epochs must be from 1 to 10,000, got 0"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="epochs must be from 1 to 10,000, got 1000000000"):
        TrainConfig(epochs=10**9)
    with pytest.raises(ValueError, match="batch_size must be from 1 to 65,536"):
        TrainConfig(batch_size=2**40)
    with pytest.raises(ValueError, match="noise_sigma must be >= 0"):
        TrainConfig(noise_sigma=-0.1)
