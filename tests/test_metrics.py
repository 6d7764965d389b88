import numpy as np
import pytest
import torch

from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig, train
from xbarsim.sweeps.metrics import NoMidpointError, logistic, midpoint_noise_level, noise_curve
from xbarsim.sweeps.plots import plot_noise_curves


@pytest.mark.parametrize("seed, true_mid", [(0, 0.286), (1, 2.59), (2, 0.05)])
def test_midpoint_fit_recovers_a_known_midpoint(seed, true_mid):
    rng = np.random.default_rng(seed)
    sigmas = np.logspace(-2, 2, 17)
    truth = logistic(np.log10(sigmas), 0.85, 3.0, np.log10(true_mid), 0.1)
    accs = np.clip(truth[:, None] + 0.02 * rng.standard_normal((17, 10)), 0, 1)
    fit = midpoint_noise_level(sigmas, accs.mean(1), accs.std(1, ddof=1))
    assert abs(fit.sigma_mid - true_mid) < 2 * fit.sigma_mid_err
    assert fit.sigma_mid_err < 0.2 * true_mid
    assert np.allclose(fit.curve(sigmas), truth, atol=0.03)


def test_a_noise_free_level_is_left_out_of_the_fit():
    sigmas = np.logspace(-2, 2, 17)
    truth = logistic(np.log10(sigmas), 0.85, 3.0, np.log10(0.3), 0.1)
    std = np.full(17, 0.01)
    with_zero = midpoint_noise_level(np.r_[0.0, sigmas], np.r_[0.95, truth], np.r_[0.01, std])
    assert with_zero.sigma_mid == midpoint_noise_level(sigmas, truth, std).sigma_mid
    with pytest.raises(NoMidpointError, match="at least 5 noise levels > 0, got 4"):
        midpoint_noise_level([0, 0.1, 0.2, 0.3, 0.4], np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match=">= 0"):
        midpoint_noise_level(-sigmas, truth, std)


def test_flat_or_one_sided_data_has_no_midpoint():
    sigmas = np.logspace(-2, 2, 17)
    with pytest.raises(NoMidpointError, match="does not fall through a midpoint"):
        midpoint_noise_level(sigmas, np.full(17, 0.9), np.full(17, 0.01))
    falling_late = logistic(np.log10(sigmas), 0.8, 3.0, 3.0, 0.1)  # midpoint beyond the range
    with pytest.raises(NoMidpointError):
        midpoint_noise_level(sigmas, falling_late, np.full(17, 0.01))
    with pytest.raises(ValueError, match="same length"):
        midpoint_noise_level(sigmas, np.ones(3), np.ones(3))


def test_noise_curve_of_a_trained_model_falls_and_plots(tmp_path):
    split = data.digits()
    model = zoo.build("mlp")
    train(model, split, TrainConfig(epochs=10), progress=False)
    curve = noise_curve(model, split.x_test, split.y_test, np.logspace(-2, 2, 13), repeats=3)
    assert curve.mean[0] > 0.85 and curve.mean[-1] < 0.2
    fit = curve.midpoint()
    assert 0.01 < fit.sigma_mid < 100
    path = plot_noise_curves({"mlp": curve}, tmp_path / "curve.png")
    assert path.stat().st_size > 10_000
    with torch.no_grad():  # the injected noise is gone afterwards
        assert torch.equal(model(split.x_test[:5]), model(split.x_test[:5]))
