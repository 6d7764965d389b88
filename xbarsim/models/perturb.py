"""Weight perturbations for robust training, as torch parametrizations that can
be removed again, leaving the trained weights:

- ``WeightNoise``: Noisy Machines' additive weight noise, per layer
  ``sigma_l = eta * (max W_l - min W_l)``, on every Linear / Conv weight, every weight matrix
  of an LSTM / GRU / RNN and every projection of a MultiheadAttention (each of the query, key and
  value blocks of a packed ``in_proj_weight`` with its own range, as each is its own matrix on a
  chip); redrawn every forward (training) or once per ``resample()`` (one noisy chip, for evaluation);
- ``LogNormalPerturbation``: BayesFT's ``theta * exp(lambda)``, lambda ~ N(0, sigma^2) per
  element of every parameter (weights, biases, BatchNorm affine), drawn once per ``resample()``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
_RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)


def _non_negative(value: float, what: str) -> float:
    if not value >= 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return float(value)


def weight_names(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, parameter name) of every weight matrix: Linear / Conv ``weight``, the
    ``weight_ih_l*`` / ``weight_hh_l*`` of recurrent layers and a MultiheadAttention's
    ``in_proj_weight`` or ``q/k/v_proj_weight`` (biases excluded)."""
    found = [(m, "weight") for m in model.modules() if isinstance(m, _WEIGHTED)]
    for module in model.modules():
        if isinstance(module, _RECURRENT):
            names = [name for name, _ in module.named_parameters(recurse=False) if name.startswith("weight_")]
            found += [(module, name) for name in names]
        if isinstance(module, nn.MultiheadAttention):
            names = ("in_proj_weight",) if module._qkv_same_embed_dim else ("q_proj_weight", "k_proj_weight", "v_proj_weight")
            found += [(module, name) for name in names]
    return found


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
    """``w + eta * (max w - min w) * n``, the range taken over each of ``blocks`` equal row blocks (the
    packed query/key/value projections); n is drawn at every call, or held in ``unit`` (when given a
    shape) until the next ``resample``."""

    def __init__(self, eta: float, held: torch.Tensor | None = None, blocks: int = 1):
        super().__init__()
        self.eta, self.blocks = eta, blocks
        self.unit = None if held is None else torch.zeros_like(held)  # a plain tensor (not state), on the weight's device

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        parts = w.reshape(self.blocks, -1)
        span = (parts.max(dim=1, keepdim=True).values - parts.min(dim=1, keepdim=True).values).detach()
        sigma = (self.eta * span).expand_as(parts).reshape(w.shape)
        return w + sigma * (torch.randn_like(w) if self.unit is None else self.unit)


class WeightNoise(_Parametrizations):
    """Additive Gaussian weight noise on every weight matrix (``weight_names``), per layer
    ``sigma_l = eta * (max W_l - min W_l)``. ``per_forward=True`` redraws it at every forward
    (noise-injection training); ``False`` holds one draw until ``resample()`` (a noisy chip)."""

    def __init__(self, model: nn.Module, eta: float, per_forward: bool = True):
        _non_negative(eta, "weight-noise eta")
        targets = weight_names(model)
        if not targets:
            raise ValueError(f"{type(model).__name__} has no Linear, Conv or recurrent layer for weight noise")
        transforms = [_AdditiveNoise(0.0, None if per_forward else getattr(m, name).detach(), 3 if name == "in_proj_weight" else 1)
                      for m, name in targets]  # fmt: skip
        super().__init__([(m, name, t) for (m, name), t in zip(targets, transforms)])
        self.set_eta(eta)
        if not per_forward:
            self.resample()

    def set_eta(self, eta: float) -> None:
        for _, _, transform in self._targets:
            transform.eta = _non_negative(eta, "weight-noise eta")

    @torch.no_grad()
    def resample(self) -> None:
        """A new held draw (from torch's global generator); no effect with ``per_forward``."""
        for _, _, transform in self._targets:
            if transform.unit is not None:
                transform.unit.normal_()


class _LogNormal(nn.Module):
    def __init__(self, param: torch.Tensor):
        super().__init__()
        self.register_buffer("log_factor", torch.zeros_like(param.detach()))

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return theta * torch.exp(self.log_factor)


class LogNormalPerturbation(_Parametrizations):
    """Every parameter becomes ``theta * exp(lambda)``; ``resample()`` draws new lambdas (one
    Monte-Carlo trial, i.e. one chip state); they stay fixed between calls."""

    def __init__(self, model: nn.Module, sigma: float):
        self.sigma = _non_negative(sigma, "BayesFT sigma")
        targets = [(module, name, _LogNormal(param))
                   for module in model.modules() for name, param in list(module.named_parameters(recurse=False))]  # fmt: skip
        super().__init__(targets)
        self.resample()

    @torch.no_grad()
    def resample(self, sigma: float | None = None) -> None:
        """New lambdas ~ N(0, sigma^2) (from torch's global generator), optionally at a new sigma."""
        if sigma is not None:
            self.sigma = _non_negative(sigma, "BayesFT sigma")
        for _, _, transform in self._targets:
            transform.log_factor.normal_(0.0, self.sigma)
