"""Quantization-aware training: fake quantization with a straight-through estimator (docs/robustness.md).

``Q(r) = clamp(round(r / S) - Z, q_min, q_max)``, dequantized back to ``(Q + Z) * S``.
Symmetric: ``S = max|r| / (2^(b-1) - 1)``, Z = 0; asymmetric: ``S = (beta - alpha) / (2^b - 1)``,
``Z = round(alpha / S)``, Q in [0, 2^b - 1]. Weights per output channel for convolutions and per
tensor for linear layers; activations per tensor, after every activation function, with a
*constant* range (a fixed maximum set once) or a *dynamic* one (from each activation map).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .perturb import _Parametrizations

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.GELU, nn.ELU, nn.SiLU)


@dataclass(frozen=True)
class QATConfig:
    bits: int = 8
    symmetric: bool = True
    activation_scale: str = "dynamic"  # "dynamic" or "const:<max value>"

    def __post_init__(self):
        if not 2 <= self.bits <= 16:
            raise ValueError(f"QAT bits must be 2..16, got {self.bits}")
        if self.activation_scale != "dynamic" and not self.activation_scale.startswith("const:"):
            raise ValueError(f"activation scale {self.activation_scale!r}: use 'dynamic' or 'const:<max>' (e.g. const:1)")
        if self.activation_scale.startswith("const:") and not 0 < float(self.activation_scale[6:]) < math.inf:
            raise ValueError(f"a constant activation scale must be a finite number > 0, got {self.activation_scale}")

    @property
    def constant(self) -> float | None:
        return float(self.activation_scale[6:]) if self.activation_scale.startswith("const:") else None


def fake_quantize(r: torch.Tensor, low: torch.Tensor, high: torch.Tensor, bits: int, symmetric: bool) -> torch.Tensor:
    """Quantize-dequantize r onto the grid of [low, high] (broadcastable); gradient passes straight through."""
    with torch.no_grad():
        if symmetric:
            levels = 2 ** (bits - 1) - 1
            scale = torch.clamp(torch.maximum(high.abs(), low.abs()) / levels, min=1e-12)
            q = torch.clamp(torch.round(r / scale), -levels, levels) * scale
        else:
            scale = torch.clamp((high - low) / (2**bits - 1), min=1e-12)
            zero = torch.round(low / scale)
            q = (torch.clamp(torch.round(r / scale) - zero, 0, 2**bits - 1) + zero) * scale
    return r + (q - r).detach()


class _WeightQuant(nn.Module):
    def __init__(self, bits: int, symmetric: bool, per_channel: bool):
        super().__init__()
        self.bits, self.symmetric, self.per_channel = bits, symmetric, per_channel

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.per_channel:
            dims = tuple(range(1, w.dim()))
            low, high = w.detach().amin(dim=dims, keepdim=True), w.detach().amax(dim=dims, keepdim=True)
        else:
            low, high = w.detach().min(), w.detach().max()
        return fake_quantize(w, low, high, self.bits, self.symmetric)


class QuantizationAware(_Parametrizations):
    """Fake-quantize every Linear/Conv weight and every activation-function output of ``model``
    until ``remove()`` (which leaves the float weights)."""

    def __init__(self, model: nn.Module, cfg: QATConfig):
        self.cfg = cfg
        layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
        if not layers:
            raise ValueError(f"{type(model).__name__} has no Linear or Conv layer to quantize")
        super().__init__([(m, "weight", _WeightQuant(cfg.bits, cfg.symmetric, per_channel=not isinstance(m, nn.Linear)))
                          for m in layers])  # fmt: skip
        self._hooks = [m.register_forward_hook(self._quantize_output) for m in model.modules() if isinstance(m, ACTIVATIONS)]

    def _quantize_output(self, module, inputs, x: torch.Tensor) -> torch.Tensor:
        constant = self.cfg.constant
        if constant is not None:
            low = torch.tensor(-constant if self.cfg.symmetric else 0.0)
            high = torch.tensor(constant)
        else:  # dynamic: the range of each activation map (each sample)
            dims = tuple(range(1, x.dim()))
            low, high = x.detach().amin(dim=dims, keepdim=True), x.detach().amax(dim=dims, keepdim=True)
        return fake_quantize(x, low, high, self.cfg.bits, self.cfg.symmetric)

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        super().remove()
