"""Accuracy under noise and the midpoint noise level.

The accuracy-vs-sigma curve is fitted with ``A(s) = a / (1 + exp(k (log10 s - x_mid))) + b`` by
weighted least squares (``scipy.optimize.curve_fit`` with the per-point std over repeats as
``sigma``, ``absolute_sigma=True``); ``sigma_mid = 10**x_mid`` is where the curve is halfway
between its plateaus a + b and b, and its standard error comes from the fit's covariance.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import OptimizeWarning, curve_fit
from torch import nn
from tqdm import tqdm

from ..models.training import model_device
from .noise_kinds import ActivationNoise, NoiseKind

STD_FLOOR = 1e-3  # a point with zero spread over repeats still has this much (binomial resolution)


def logistic(log_sigma: np.ndarray, a: float, k: float, x_mid: float, b: float) -> np.ndarray:
    return a / (1.0 + np.exp(k * (log_sigma - x_mid))) + b


@dataclass(frozen=True)
class MidpointFit:
    sigma_mid: float
    sigma_mid_err: float
    params: tuple[float, float, float, float]  # a, k, x_mid, b
    covariance: np.ndarray

    def curve(self, sigmas: np.ndarray) -> np.ndarray:
        """The fitted accuracy at ``sigmas``."""
        return logistic(np.log10(np.asarray(sigmas, float)), *self.params)


class NoMidpointError(ValueError):
    """The accuracy never falls through a midpoint inside the sampled noise range."""


def midpoint_noise_level(sigmas: Sequence[float], acc_mean: Sequence[float], acc_std: Sequence[float]) -> MidpointFit:
    """Fit the logistic in log10(sigma) and return sigma_mid with its standard error. Level 0 (no
    noise) is left out: a logarithmic axis has no place for it."""
    s, m, sd = (np.asarray(v, float) for v in (sigmas, acc_mean, acc_std))
    if not (s.shape == m.shape == sd.shape and s.ndim == 1):
        raise ValueError("need sigmas, acc_mean and acc_std of the same length")
    if np.any(s < 0) or not np.all(np.isfinite(np.concatenate([s, m, sd]))):
        raise ValueError("sigmas must be >= 0 and every value finite")
    s, m, sd = s[s > 0], m[s > 0], sd[s > 0]
    if s.size < 5:
        raise NoMidpointError(f"a midpoint needs at least 5 noise levels > 0, got {s.size}")
    order = np.argsort(s)
    s, m, sd = s[order], m[order], np.maximum(sd[order], STD_FLOOR)
    x = np.log10(s)
    top, bottom = m[: max(2, s.size // 5)].mean(), m[-max(2, s.size // 5) :].mean()
    half = (top + bottom) / 2
    below = np.flatnonzero(m < half)
    if top - bottom < 3 * np.median(sd) or below.size == 0 or below[0] == 0:
        raise NoMidpointError(
            f"the accuracy does not fall through a midpoint between sigma={s[0]:g} and {s[-1]:g} "
            f"(from {top:.3f} to {bottom:.3f}): widen the noise range"
        )
    i = below[0]
    x_guess = x[i - 1] + (x[i] - x[i - 1]) * (m[i - 1] - half) / (m[i - 1] - m[i])
    guess = (top - bottom, 5.0, x_guess, bottom)
    try:
        with warnings.catch_warnings():  # an inestimable covariance is reported below, as an error
            warnings.simplefilter("ignore", OptimizeWarning)
            params, cov = curve_fit(logistic, x, m, p0=guess, sigma=sd, absolute_sigma=True, maxfev=20000)
    except RuntimeError as exc:
        raise NoMidpointError(f"the logistic fit did not converge: {exc}") from exc
    if not (x[0] <= params[2] <= x[-1]) or params[0] * params[1] <= 0 or not np.all(np.isfinite(cov)):
        raise NoMidpointError(f"the fitted midpoint 10**{params[2]:.3g} lies outside the data or the fit is degenerate")
    if np.sqrt(cov[2, 2]) > x[-1] - x[0]:
        raise NoMidpointError(f"the midpoint is undetermined: its error (±{np.sqrt(cov[2, 2]):.3g} decades) exceeds the sampled range")
    sigma_mid = 10.0 ** params[2]
    return MidpointFit(float(sigma_mid), float(np.log(10) * sigma_mid * np.sqrt(cov[2, 2])), tuple(map(float, params)), cov)


@dataclass(frozen=True)
class NoiseCurve:
    sigmas: np.ndarray  # (S,)
    accuracies: np.ndarray  # (S, repeats)

    @property
    def mean(self) -> np.ndarray:
        return self.accuracies.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        return self.accuracies.std(axis=1, ddof=1) if self.accuracies.shape[1] > 1 else np.zeros(len(self.sigmas))

    def midpoint(self) -> MidpointFit:
        return midpoint_noise_level(self.sigmas, self.mean, self.std)


@torch.no_grad()
def noise_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigmas: Sequence[float], repeats: int = 10,
                noise: NoiseKind = ActivationNoise(), seed: int = 0, batch_size: int = 1024, progress: bool = False) -> NoiseCurve:  # fmt: skip
    """Test accuracy of ``model`` under each level of ``noise`` (default: additive Gaussian noise
    after every module), ``repeats`` times per level. Repeat r of level i draws its noise from
    ``SeedSequence([seed, i, r])``, so one seed gives one curve; the model is left as it was."""
    model.eval()
    device = model_device(model)
    accuracies = np.zeros((len(sigmas), repeats))
    with noise.applied(model) as at:
        with tqdm(total=len(sigmas) * repeats, desc="noise curve", disable=not progress, file=sys.stderr) as bar:
            for i, sigma in enumerate(sigmas):
                for r in range(repeats):
                    network = at(float(sigma), int(np.random.SeedSequence([seed, i, r]).generate_state(1)[0]))
                    correct = torch.zeros((), dtype=torch.int64, device=device)
                    for start in range(0, len(y), batch_size):
                        logits = network(x[start : start + batch_size].to(device))
                        correct += (logits.argmax(dim=1) == y[start : start + batch_size].to(device)).sum()
                    accuracies[i, r] = int(correct) / len(y)
                    bar.update()
    return NoiseCurve(np.asarray(sigmas, float), accuracies)
