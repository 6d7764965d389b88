"""Weight perturbations for robust training (DESIGN.md §4), as torch parametrizations that can
be removed again, leaving the trained weights:

- ``WeightNoise``: Noisy Machines' additive weight noise, redrawn every forward, per layer
  ``sigma_l = eta * (max W_l - min W_l)``, on every Linear / Conv weight;
- ``LogNormalPerturbation``: BayesFT's ``theta * exp(lambda)``, lambda ~ N(0, sigma^2) per
  element of every parameter (weights, biases, BatchNorm affine), drawn once per ``resample()``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


class _Parametrizations:
    """Registered parametrizations that ``remove()`` takes away again, keeping the originals."""

    def __init__(self, targets: list[tuple[nn.Module, str, nn.Module]]):
        self._targets = targets
        for module, name, transform in targets:
            parametrize.register_parametrization(module, name, transform)

    def remove(self) -> None:
        for module, name, _ in self._targets:
            if parametrize.is_parametrized(module, name):
                parametrize.remove_parametrizations(module, name, leave_parametrized=False)
        self._targets = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class _AdditiveNoise(nn.Module):
    def __init__(self, eta: float):
        super().__init__()
        self.eta = eta

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        sigma = self.eta * (w.max() - w.min()).detach()
        return w + sigma * torch.randn_like(w)


class WeightNoise(_Parametrizations):
    """Additive Gaussian weight noise on every Linear/Conv weight, redrawn every forward."""

    def __init__(self, model: nn.Module, eta: float):
        if not eta >= 0:
            raise ValueError(f"weight-noise eta must be >= 0, got {eta}")
        modules = [m for m in model.modules() if isinstance(m, _WEIGHTED)]
        if not modules:
            raise ValueError(f"{type(model).__name__} has no Linear or Conv layer for weight noise")
        super().__init__([(m, "weight", _AdditiveNoise(eta)) for m in modules])


class _LogNormal(nn.Module):
    def __init__(self, shape: torch.Size):
        super().__init__()
        self.register_buffer("log_factor", torch.zeros(shape))

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return theta * torch.exp(self.log_factor)


class LogNormalPerturbation(_Parametrizations):
    """Every parameter becomes ``theta * exp(lambda)``; ``resample()`` draws new lambdas (one
    Monte-Carlo trial, i.e. one chip state); they stay fixed between calls."""

    def __init__(self, model: nn.Module, sigma: float):
        if not sigma >= 0:
            raise ValueError(f"BayesFT sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)
        targets = [(module, name, _LogNormal(param.shape))
                   for module in model.modules() for name, param in list(module.named_parameters(recurse=False))]  # fmt: skip
        super().__init__(targets)
        self.resample()

    @torch.no_grad()
    def resample(self) -> None:
        for _, _, transform in self._targets:
            transform.log_factor.normal_(0.0, self.sigma)
