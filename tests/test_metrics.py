import numpy as np
import pytest
import torch

from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig, train
from xbarsim.sweeps.metrics import NoMidpointError, NoiseCurve, accuracy_resolution, midpoint_noise_level, noise_curve, sigmoid
from xbarsim.sweeps.plots import plot_noise_curves

N_TEST, REPEATS, DRAWS = 359, 10, 200
LEVELS = np.logspace(-2, 2, 17)
TRUE_X = np.log10(0.3)
# 68.3% nominal; three binomial standard deviations of a rate over 200 draws: sqrt(0.683 * 0.317 / 200) = 0.033
NOMINAL, TOLERANCE = 0.683, 3 * 0.033


def _weibull_cliff(m: float):
    """Accuracy that stays up, then collapses: 0.1 + 0.87 exp(-(s / s0)^m), halfway at s = 0.3 (a
    Gumbel curve in log10 s, not a logistic: the shape of a network trained at the noise it meets)."""
    s0 = 0.3 / np.log(2) ** (1 / m)
    return lambda x: 0.1 + 0.87 * np.exp(-((10.0**x / s0) ** m))


def _draws(truth, seed: int, levels=LEVELS, repeats=REPEATS):
    """Synthetic curves with the noise of a real one: each repeat's accuracy is a binomial count of
    N_TEST test samples at the true accuracy (so the spread shrinks on the plateaus and is quantized)."""
    rng = np.random.default_rng(seed)
    p = np.clip(truth(np.log10(levels)), 0, 1)
    for _ in range(DRAWS):
        yield rng.binomial(N_TEST, p[:, None], size=(len(levels), repeats)) / N_TEST


def _coverage(truth, seed: int) -> float:
    hits = 0
    for accuracies in _draws(truth, seed):
        fit = midpoint_noise_level(LEVELS, accuracies, 1 / N_TEST)
        hits += abs(np.log10(fit.sigma_mid) - TRUE_X) <= fit.log10_err
    return hits / DRAWS


@pytest.mark.parametrize("slope, seed", [(3.0, 0), (8.0, 1)])
def test_the_midpoint_error_covers_the_truth_at_its_nominal_rate(slope, seed):
    """The quoted ±1 standard error holds the true midpoint in ~68% of 200 curves. The old fit
    (weights = the std over repeats, not the error of the mean) covered 98.5% and 99.5% here."""
    coverage = _coverage(lambda x: sigmoid(x, 0.97, 0.1, slope, TRUE_X), seed)
    assert abs(coverage - NOMINAL) < TOLERANCE, coverage


def test_the_midpoint_error_covers_the_truth_of_a_cliff():
    """A cliff that is not a logistic (two levels on the way down): the fitted asymmetry keeps the
    midpoint unbiased. The old fit (a symmetric logistic) covered 20.5% here."""
    coverage = _coverage(_weibull_cliff(3.0), seed=2)
    assert abs(coverage - NOMINAL) < TOLERANCE, coverage


def test_a_step_between_two_levels_has_no_midpoint_but_its_bracket():
    """The accuracy falls from its top to its bottom between two adjacent levels: the data only bracket
    the midpoint, and say between which levels (the truth, 0.3, lies between them)."""
    for accuracies in _draws(lambda x: np.where(x < TRUE_X, 0.97, 0.1), seed=3):
        with pytest.raises(NoMidpointError, match="only bracket the midpoint") as caught:
            midpoint_noise_level(LEVELS, accuracies, 1 / N_TEST)
        low, high = caught.value.bracket
        assert (low, high) == (LEVELS[5], LEVELS[6]) and low < 0.3 < high


def test_the_level_at_a_fixed_drop_covers_its_truth():
    """The level where the curve is 5 points below its top (the float network's accuracy), with its
    error: ~68% coverage too."""
    top, bottom, slope = 0.97, 0.1, 3.0
    truth = top - 0.05
    x_true = TRUE_X + np.log((top - bottom) / (truth - bottom) - 1) / slope  # the logistic solved for truth
    hits = 0
    for accuracies in _draws(lambda x: sigmoid(x, top, bottom, slope, TRUE_X), seed=4):
        level, err = NoiseCurve(LEVELS, accuracies, 1 / N_TEST).level_at_drop(top, 0.05)
        hits += abs(level - 10**x_true) <= err
    assert abs(hits / DRAWS - NOMINAL) < TOLERANCE, hits / DRAWS


def test_levels_whose_repeats_agree_get_one_test_sample_as_their_spread():
    """A level whose repeats all agree (a plateau) is weighted as if one repeat's spread were one test
    sample (1 / n_test; one digits image is 2.8e-3), never 0: chi2 is computed with exactly these
    errors, max(std, 1 / n_test) / sqrt(repeats) per level, and the floor changes it."""
    truth = sigmoid(np.log10(LEVELS), 0.97, 0.1, 3.0, TRUE_X)
    accuracies = next(_draws(lambda x: sigmoid(x, 0.97, 0.1, 3.0, TRUE_X), seed=5))
    accuracies[:3] = np.round(truth[:3, None] * N_TEST) / N_TEST  # no spread at the three lowest levels
    accuracies[1] += 1 / N_TEST  # and one sample more at one of them
    assert accuracy_resolution(accuracies) == 1 / N_TEST
    fits = {resolution: midpoint_noise_level(LEVELS, accuracies, resolution) for resolution in (1 / N_TEST, 1e-3)}
    for resolution, fit in fits.items():
        errors = np.maximum(accuracies.std(1, ddof=1), resolution) / np.sqrt(REPEATS)
        assert fit.chi2 == pytest.approx(np.sum(((accuracies.mean(1) - fit.curve(LEVELS)) / errors) ** 2), rel=1e-9)
        assert abs(np.log10(fit.sigma_mid) - TRUE_X) < 3 * fit.log10_err and np.allclose(fit.curve(LEVELS), truth, atol=0.02)
    assert fits[1e-3].chi2 > 2 * fits[1 / N_TEST].chi2  # the floor matters at the plateau


def test_a_misfit_scales_the_error_by_chi_squared():
    """The covariance is multiplied by chi2 / dof when the curve misses the data by more than their
    errors, and never shrunk when it fits better than that."""
    truth = sigmoid(np.log10(LEVELS), 0.97, 0.1, 3.0, TRUE_X)
    rng = np.random.default_rng(6)
    noise = rng.standard_normal((17, REPEATS))
    good = truth[:, None] + 0.01 * (noise - noise.mean(1, keepdims=True))  # means exact: chi2 ~ 0
    wobble = good + 0.03 * np.sin(np.arange(17))[:, None]  # means off by up to 10x their error
    exact, off = midpoint_noise_level(LEVELS, good, 1e-4), midpoint_noise_level(LEVELS, wobble, 1e-4)
    assert exact.scale == 1.0 and off.scale == pytest.approx(off.chi2 / off.dof) and off.scale > 10


def test_a_metric_that_rises_with_noise_has_the_same_midpoint():
    """Lower-is-better metrics (a loss, bits per character) fit the same curve upside down."""
    accuracies = next(_draws(lambda x: sigmoid(x, 0.97, 0.1, 3.0, TRUE_X), seed=7))
    falling = midpoint_noise_level(LEVELS, accuracies, 1 / N_TEST)
    rising = midpoint_noise_level(LEVELS, 2.0 - accuracies, 1 / N_TEST, higher_is_better=False)
    assert rising.sigma_mid == pytest.approx(falling.sigma_mid, rel=1e-6)
    assert rising.sigma_mid_err == pytest.approx(falling.sigma_mid_err, rel=1e-4)
    assert np.allclose(rising.curve(LEVELS), 2.0 - falling.curve(LEVELS), atol=1e-9)
    level, _ = NoiseCurve(LEVELS, 2.0 - accuracies, 1 / N_TEST, metric="bpc").level_at_drop(2.0 - 0.97, 0.05)
    assert level == pytest.approx(NoiseCurve(LEVELS, accuracies, 1 / N_TEST).level_at_drop(0.97, 0.05)[0], rel=1e-5)


def test_a_noise_free_level_is_left_out_of_the_fit():
    truth = sigmoid(np.log10(LEVELS), 0.97, 0.1, 3.0, TRUE_X)[:, None] + np.linspace(-0.01, 0.01, 4)
    with_zero = midpoint_noise_level(np.r_[0.0, LEVELS], np.r_[truth[:1], truth], 1e-3)
    assert with_zero.sigma_mid == midpoint_noise_level(LEVELS, truth, 1e-3).sigma_mid
    with pytest.raises(NoMidpointError, match="at least 5 noise levels > 0, got 4"):
        midpoint_noise_level([0, 0.1, 0.2, 0.3, 0.4], np.ones((5, 2)), 1e-3)
    with pytest.raises(ValueError, match=">= 0"):
        midpoint_noise_level(-LEVELS, truth, 1e-3)
    with pytest.raises(ValueError, match="resolution"):
        midpoint_noise_level(LEVELS, truth, 0.0)


def test_flat_or_one_sided_data_has_no_midpoint():
    with pytest.raises(NoMidpointError, match="does not pass through a midpoint"):
        midpoint_noise_level(LEVELS, np.full((17, 3), 0.9), 1e-3)
    falling_late = sigmoid(np.log10(LEVELS), 0.9, 0.1, 3.0, 3.0)  # midpoint beyond the range
    with pytest.raises(NoMidpointError, match="bottom plateau"):
        midpoint_noise_level(LEVELS, falling_late, 1e-3)
    with pytest.raises(ValueError, match="every level"):
        midpoint_noise_level(LEVELS, np.ones((3, 2)), 1e-3)
    curve = NoiseCurve(LEVELS, np.repeat(sigmoid(np.log10(LEVELS), 0.6, 0.1, 3.0, TRUE_X)[:, None], 3, 1), 1e-3)
    with pytest.raises(NoMidpointError, match="never reaches"):
        curve.level_at_drop(0.97, 0.05)  # an arm whose clean accuracy is already below the level


def test_noise_curve_of_a_trained_model_falls_and_plots(tmp_path):
    split = data.digits()
    model = zoo.build("mlp")
    train(model, split, TrainConfig(epochs=10), progress=False)
    curve = noise_curve(model, split.x_test, split.y_test, np.logspace(-2, 2, 13), repeats=3)
    assert curve.mean[0] > 0.85 and curve.mean[-1] < 0.2 and curve.resolution == 1 / len(split.y_test)
    fit = curve.midpoint()
    assert 0.01 < fit.sigma_mid < 100
    path = plot_noise_curves({"mlp": curve}, tmp_path / "curve.png")
    assert path.stat().st_size > 10_000
    with torch.no_grad():  # the injected noise is gone afterwards
        assert torch.equal(model(split.x_test[:5]), model(split.x_test[:5]))
