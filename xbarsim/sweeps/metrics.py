"""Accuracy (or, for a language model, bits per character) under noise, the midpoint noise level and the level
at a fixed drop.

A metric-vs-level curve is fitted with ``A(s) = a / (1 + exp(k (log10 s - x_mid))) + b`` by
weighted least squares: each level's mean over repeats, weighted by its standard error
(``max(std, resolution) / sqrt(repeats)``), with bounds on every parameter, and the covariance
scaled by the fit's chi-squared per degree of freedom when that exceeds 1 (the logistic does not
describe the data to their errors). ``sigma_mid = 10**x_mid`` is where the fitted curve is halfway
between its plateaus a + b and b. Bits per character rise with the noise where accuracy falls: their
curve is fitted negated (the midpoint is the same for any affine change of the metric). Why this and
not a bootstrap: docs/robustness.md.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import reduce
from math import lcm

import numpy as np
import torch
from scipy.optimize import OptimizeWarning, curve_fit
from torch import nn
from tqdm import tqdm

from ..models.training import accuracy, score
from .noise_kinds import ActivationNoise, NoiseKind

MIN_LEVELS = 5  # levels > 0 a midpoint needs (the symmetric curve's four parameters and one degree of freedom)
ASYMMETRIC_LEVELS = 8  # from this many levels on, the curve's asymmetry is fitted too (three degrees of freedom left)
BAND = 0.1  # a level lies on the transition when its mean is more than this fraction of the drop from both plateaus
STEEPEST = 100.0  # the slope bound, per smallest level spacing in decades: a steeper fit is a step between two levels
NU_RANGE = (0.02, 50.0)  # bounds of the asymmetry nu (1: the logistic; towards 0: a cliff, the Gumbel curve)


def sigmoid(log_level: np.ndarray, top: float, bottom: float, k: float, x_mid: float, log_nu: float = 0.0) -> np.ndarray:
    """The generalized logistic in x = log10(level), falling from ``top`` to ``bottom`` when k > 0:
    ``bottom + (top - bottom) (1 + nu exp(k (x - x_mid) + c))^(-1/nu)``, with ``c = ln((2^nu - 1) / nu)``
    so that it is exactly halfway at ``x_mid``. nu = 1 is the logistic ``1 / (1 + exp(k (x - x_mid)))``."""
    nu = np.exp(log_nu)
    c = np.log(np.expm1(nu * np.log(2.0))) - log_nu
    z = k * (np.asarray(log_level, float) - x_mid) + c + log_nu
    return bottom + (top - bottom) * np.exp(-np.logaddexp(0.0, z) / nu)


class NoMidpointError(ValueError):
    """No midpoint (or level) can be read from the data. ``bracket`` holds the two levels between
    which the metric crosses halfway, when the data show only that."""

    def __init__(self, message: str, bracket: tuple[float, float] | None = None):
        super().__init__(message)
        self.bracket = bracket


@dataclass(frozen=True)
class MidpointFit:
    """The fitted curve (``params`` = top, bottom, k, x_mid, log_nu of ``sigmoid``; ``covariance``
    of them, chi-squared scaled) and its midpoint level ``sigma_mid`` ± ``sigma_mid_err``
    (``log10_err`` decades)."""

    sigma_mid: float
    sigma_mid_err: float
    log10_err: float
    params: tuple[float, float, float, float, float]
    covariance: np.ndarray  # (5, 5); the log_nu row and column are 0 when the curve was fitted symmetric
    chi2: float
    dof: int
    log_range: tuple[float, float]  # log10 of the lowest and highest level fitted

    @property
    def scale(self) -> float:
        """The factor the covariance was multiplied by: max(1, chi2 / dof)."""
        return max(1.0, self.chi2 / self.dof)

    def curve(self, sigmas: np.ndarray) -> np.ndarray:
        """The fitted metric at ``sigmas``."""
        return sigmoid(np.log10(np.asarray(sigmas, float)), *self.params)

    def level_at(self, value: float) -> tuple[float, float]:
        """The level where the fitted curve passes through ``value``, with its standard error from
        the covariance (delta method). Raises ``NoMidpointError`` when the curve does not pass
        through ``value`` inside the fitted levels."""
        x = _log_level_at(np.asarray(self.params), value)
        if not np.isfinite(x):
            raise NoMidpointError(f"the fitted curve never reaches {value:.4g} (its plateaus are {self.params[0]:.4g} "
                                  f"and {self.params[1]:.4g})")  # fmt: skip
        if not self.log_range[0] <= x <= self.log_range[1]:
            raise NoMidpointError(f"the fitted curve reaches {value:.4g} at level {10**x:.3g}, outside the levels measured")
        steps = 1e-6 * np.maximum(1.0, np.abs(self.params))
        grad = np.array([(_log_level_at(np.add(self.params, h * e), value) - _log_level_at(np.subtract(self.params, h * e), value)) / (2 * h)
                         for h, e in zip(steps, np.eye(5))])  # fmt: skip
        grad[~np.isfinite(grad)] = 0.0  # a parameter held fixed (log_nu of a symmetric fit) has no variance
        err = float(np.sqrt(max(grad @ self.covariance @ grad, 0.0)))
        return float(10.0**x), float(np.log(10) * 10.0**x * err)


def _log_level_at(params: np.ndarray, value: float) -> float:
    """log10 of the level where ``sigmoid(., *params)`` equals ``value`` (NaN where it never does)."""
    top, bottom, k, x_mid, log_nu = params
    f = (value - bottom) / (top - bottom)
    if not 0 < f < 1 or k <= 0:
        return float("nan")
    nu = np.exp(log_nu)
    c = np.log(np.expm1(nu * np.log(2.0))) - log_nu
    return float(x_mid + (np.log(np.expm1(-nu * np.log(f))) - log_nu - c) / k)


def accuracy_resolution(values: np.ndarray) -> float:
    """1 / n for accuracies that are fractions of n test samples: n is the least common
    denominator of the values (exact for fractions of up to 10**6 samples)."""
    denominators = {Fraction(float(v)).limit_denominator(10**6).denominator for v in np.unique(np.asarray(values, float))}
    return 1.0 / reduce(lcm, denominators, 1)


def midpoint_noise_level(sigmas: Sequence[float], values: np.ndarray, resolution: float, higher_is_better: bool = True) -> MidpointFit:
    """Fit the generalized logistic in log10(level) to ``values`` (levels x repeats) and return
    its midpoint.

    ``resolution``: the smallest step of the metric (1 / test samples for an accuracy), the least
    standard deviation a level's repeats are given. ``higher_is_better``: the metric falls with
    noise (accuracy); False for one that rises (a loss, bits per character). Level 0 (no noise) is
    left out: a logarithmic axis has no place for it. Raises ``NoMidpointError`` with the reason."""
    s = np.asarray(sigmas, float)
    v = np.asarray(values, float)
    if v.ndim == 1:
        v = v[:, None]
    if s.ndim != 1 or v.ndim != 2 or v.shape[0] != s.size or v.shape[1] < 1:
        raise ValueError("need one row of values (one per repeat) for every level")
    if np.any(s < 0) or not np.all(np.isfinite(s)) or not np.all(np.isfinite(v)):
        raise ValueError("levels must be >= 0 and every value finite")
    if not (np.isfinite(resolution) and resolution > 0):
        raise ValueError(f"the resolution must be a number > 0, got {resolution}")
    order = np.argsort(s)
    s, v = s[order], v[order]
    s, v = s[s > 0], v[s > 0]
    if s.size < MIN_LEVELS:
        raise NoMidpointError(f"a midpoint needs at least {MIN_LEVELS} noise levels > 0, got {s.size}")
    sign = 1.0 if higher_is_better else -1.0
    y = sign * v.mean(axis=1)  # falls with noise in this orientation
    spread = np.maximum(v.std(axis=1, ddof=1) if v.shape[1] > 1 else np.zeros(s.size), resolution)
    sem = spread / np.sqrt(v.shape[1])
    x = np.log10(s)
    fifth = max(2, s.size // 5)
    top, bottom = y[:fifth].mean(), y[-fifth:].mean()
    below = np.flatnonzero(y < (top + bottom) / 2)
    if top - bottom < 3 * np.median(spread) or below.size == 0 or below[0] == 0:
        raise NoMidpointError(f"the metric does not pass through a midpoint between level {s[0]:g} and {s[-1]:g} "
                              f"(from {sign * top:.3f} to {sign * bottom:.3f}): widen the noise range")  # fmt: skip
    i = below[0]
    bracket = (float(s[i - 1]), float(s[i]))
    on_transition = (y > bottom + BAND * (top - bottom)) & (y < top - BAND * (top - bottom))
    if not on_transition.any():
        raise _bracketed(bracket, sign * y[i - 1], sign * y[i])
    p, cov, chi2, dof = _fit(x, y, sem, top, bottom, i)
    k_max = STEEPEST / np.diff(x).min()
    if p[2] >= 0.99 * k_max:
        raise _bracketed(bracket, sign * y[i - 1], sign * y[i])
    if not (x[0] < p[3] < x[-1]) or p[0] <= p[1] or not np.all(np.isfinite(cov)):
        raise NoMidpointError(f"the fitted midpoint 10**{p[3]:.3g} lies at the edge of the data or the fit is degenerate")
    near = BAND * (p[0] - p[1]) + 2 * sem
    for name, reached in (("top", y >= p[0] - near), ("bottom", y <= p[1] + near)):
        if not reached.any():
            raise NoMidpointError(f"no level reaches the {name} plateau the fit extrapolates to ({sign * p[0 if name == 'top' else 1]:.3f}): "
                                  f"the midpoint between plateaus is not measured; widen the noise range")  # fmt: skip
    log10_err = float(np.sqrt(cov[3, 3]))
    if log10_err > x[-1] - x[0]:
        raise NoMidpointError(f"the midpoint is undetermined: its error (±{log10_err:.3g} decades) exceeds the sampled range")
    flip = np.diag([sign, sign, 1.0, 1.0, 1.0])  # back to the metric's own orientation
    params = (float(sign * p[0]), float(sign * p[1]), float(p[2]), float(p[3]), float(p[4]))
    sigma_mid = float(10.0 ** p[3])
    return MidpointFit(sigma_mid, float(np.log(10) * sigma_mid * log10_err), log10_err, params, flip @ cov @ flip, chi2, dof,
                       (float(x[0]), float(x[-1])))  # fmt: skip


def _fit(x: np.ndarray, y: np.ndarray, sem: np.ndarray, top: float, bottom: float, i: int) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Weighted least squares of ``sigmoid`` (falling) with bounds: parameters (top, bottom, k,
    x_mid, log_nu), their covariance scaled by max(1, chi2 / dof), chi2 and dof. ``i``: the first
    level below halfway. log_nu is held at 0 (the logistic) with fewer than ASYMMETRIC_LEVELS levels."""
    half = (top + bottom) / 2
    x_guess = x[i - 1] + (x[i] - x[i - 1]) * (y[i - 1] - half) / (y[i - 1] - y[i])
    lo, hi = y.min(), y.max()
    pad = 0.5 * (hi - lo)
    k_max = STEEPEST / np.diff(x).min()
    lower = [lo, lo - pad, 0.0, x[0], np.log(NU_RANGE[0])]
    upper = [hi + pad, hi, k_max, x[-1], np.log(NU_RANGE[1])]
    free = 5 if x.size >= ASYMMETRIC_LEVELS else 4
    guess = np.clip([top, bottom, min(5.0, k_max / 2), x_guess, 0.0], np.add(lower, 1e-9), np.subtract(upper, 1e-9))[:free]
    try:
        with warnings.catch_warnings():  # an inestimable covariance is reported by the caller
            warnings.simplefilter("ignore", OptimizeWarning)
            p, cov = curve_fit(sigmoid, x, y, p0=guess, sigma=sem, absolute_sigma=True, bounds=(lower[:free], upper[:free]),
                               max_nfev=20000)  # fmt: skip
    except (RuntimeError, ValueError) as exc:
        raise NoMidpointError(f"the curve fit did not converge: {exc}") from exc
    chi2 = float(np.sum(((y - sigmoid(x, *p)) / sem) ** 2))
    dof = x.size - free
    full = np.zeros((5, 5))
    full[:free, :free] = cov * max(1.0, chi2 / dof)
    return np.r_[p, np.zeros(5 - free)], full, chi2, dof


def _bracketed(bracket: tuple[float, float], above: float, below: float) -> NoMidpointError:
    return NoMidpointError(f"the data only bracket the midpoint: the metric goes from {above:.3f} at level {bracket[0]:.3g} to "
                           f"{below:.3f} at {bracket[1]:.3g} with no level on the way; add levels between them", bracket)  # fmt: skip


def mean_and_error(values: Sequence[float]) -> tuple[float, float]:
    """The mean of per-seed values and its standard error, std (ddof 1) / sqrt(n); NaN error for one value."""
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")


LOWER_IS_BETTER = ("bpc",)
BPC_RESOLUTION = 1e-4  # the least std a level's bits per character are given (they are not counts)


@dataclass(frozen=True)
class NoiseCurve:
    """A metric (accuracy by default) at each level, per repeat. ``resolution``: its smallest
    step (default: inferred from the accuracies, 1 / test samples)."""

    sigmas: np.ndarray  # (S,)
    accuracies: np.ndarray  # (S, repeats): the metric's values (accuracy, or bits per character)
    resolution: float | None = None
    metric: str = "accuracy"

    @property
    def mean(self) -> np.ndarray:
        return self.accuracies.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        return self.accuracies.std(axis=1, ddof=1) if self.accuracies.shape[1] > 1 else np.zeros(len(self.sigmas))

    @property
    def higher_is_better(self) -> bool:
        """False for a metric that rises with the noise (bits per character: fitted negated)."""
        return self.metric not in LOWER_IS_BETTER

    def midpoint(self) -> MidpointFit:
        resolution = self.resolution if self.resolution is not None else self.default_resolution()
        return midpoint_noise_level(self.sigmas, self.accuracies, resolution, self.higher_is_better)

    def default_resolution(self) -> float:
        """1 / test samples for an accuracy (inferred from the values); ``BPC_RESOLUTION`` for bits per character."""
        return accuracy_resolution(self.accuracies) if self.higher_is_better else BPC_RESOLUTION

    def level_at_drop(self, reference: float, drop: float) -> tuple[float, float]:
        """The level (± its error) where the fitted curve is ``drop`` worse than ``reference``
        (e.g. the float network's accuracy); raises ``NoMidpointError`` when there is none."""
        return self.midpoint().level_at(reference - drop if self.higher_is_better else reference + drop)


@torch.no_grad()
def noise_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigmas: Sequence[float], repeats: int = 10,
                noise: NoiseKind = ActivationNoise(), seed: int = 0, batch_size: int = 1024, progress: bool = False,
                metric: str = "accuracy") -> NoiseCurve:  # fmt: skip
    """Test accuracy (or ``metric="bpc"``: bits per character) of ``model`` under each level of ``noise``
    (default: additive Gaussian noise after every module), ``repeats`` times per level. Repeat r of level i
    draws its noise from ``SeedSequence([seed, i, r])``, so one seed gives one curve; the model is left as it was."""
    model.eval()
    accuracies = np.zeros((len(sigmas), repeats))
    with noise.applied(model) as at:
        with tqdm(total=len(sigmas) * repeats, desc="noise curve", disable=not progress, file=sys.stderr) as bar:
            for i, sigma in enumerate(sigmas):
                for r in range(repeats):
                    network = at(float(sigma), int(np.random.SeedSequence([seed, i, r]).generate_state(1)[0]))
                    accuracies[i, r] = score(network, x, y, metric) if metric != "accuracy" else accuracy(network, x, y, batch_size)
                    bar.update()
    return NoiseCurve(np.asarray(sigmas, float), accuracies, 1.0 / len(y) if metric == "accuracy" else None, metric)
