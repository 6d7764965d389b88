"""Noise injection for robustness studies: Gaussian noise after modules
(Walking Noise / the hardening paper) and at every gate pre-activation of recurrent layers
(deep noise injection, Qin & Vucinic). Noise changes the forward pass only: the backward pass is
straight through."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .overrides import ForwardOverrides
from .recurrent import run_recurrent, shape_of, torch_products

NOISE_MODES = ("additive", "multiplicative", "both")


class GaussianNoise(nn.Module):
    """``x + N(0, sigma^2)`` (additive), ``x * N(1, sigma^2)`` (multiplicative) or both, drawn
    fresh at every forward (in training and evaluation); the gradient passes unchanged; infinite
    values (masked attention scores) pass unchanged."""

    def __init__(self, sigma: float = 0.0, mode: str = "additive"):
        super().__init__()
        if mode not in NOISE_MODES:
            raise ValueError(f"noise mode {mode!r}: choose from {', '.join(NOISE_MODES)}")
        if not sigma >= 0:
            raise ValueError(f"noise sigma must be >= 0, got {sigma}")
        self.sigma, self.mode = float(sigma), mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0:
            return x
        with torch.no_grad():
            if self.mode == "additive":
                noisy = x + self.sigma * torch.randn_like(x)
            elif self.mode == "multiplicative":
                noisy = x * (1 + self.sigma * torch.randn_like(x))
            else:
                noisy = x * (1 + self.sigma * torch.randn_like(x)) + self.sigma * torch.randn_like(x)
            # a masked attention score is -inf: it stays so (inf - inf would make the deviation NaN)
            deviation = torch.where(torch.isfinite(x), noisy - x, 0.0)
        return x + deviation

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, mode={self.mode}"


_NO_NOISE_AFTER = (nn.Flatten, nn.Unflatten, nn.Dropout, nn.Identity, GaussianNoise)


def noise_sites(model: nn.Module) -> list[str]:
    """Names of the modules that get noise after them with ``where="all"``: every leaf module
    (conv, linear, activation, pooling, normalization, recurrent, ...) except reshapes,
    dropout and identities. A layer with parametrized weights (QAT, weight noise) is still a
    leaf; the parametrizations themselves are not sites (their outputs are weights). A torch
    ``nn.MultiheadAttention`` is one site (its output): its projections and products run inside its
    forward, not as modules (on a chip, ``SplitAttention`` has a site after each projection and after
    the score and context products)."""
    sites, inside = [], []
    for name, module in model.named_modules():
        if "parametrizations" in name.split(".") or any(name.startswith(prefix) for prefix in inside):
            continue
        if isinstance(module, nn.MultiheadAttention):
            sites.append(name)
            inside.append(f"{name}." if name else "")
            continue
        children = [child for child, _ in module.named_children() if child != "parametrizations"]
        if not children and not isinstance(module, _NO_NOISE_AFTER):
            sites.append(name)
    return sites


class NoiseInjection:
    """Gaussian noise after the chosen modules of ``model`` (forward hooks, so the model's
    structure and state_dict stay as they are). Use as a context manager or call ``remove()``."""

    def __init__(self, model: nn.Module, sigma: float, where: str | Sequence[str] = "all", mode: str = "additive"):
        modules = dict(model.named_modules())
        names = noise_sites(model) if where == "all" else list(where)
        unknown = [n for n in names if n not in modules]
        if unknown:
            raise ValueError(f"no module named {unknown[0]!r} in {type(model).__name__} to put noise after")
        self.noise = {name: GaussianNoise(sigma, mode) for name in names}
        self._handles = [modules[name].register_forward_hook(self._hook(self.noise[name])) for name in names]

    @staticmethod
    def _hook(noise: GaussianNoise):
        def add_noise(module, inputs, output):
            if isinstance(output, tuple):  # recurrent layers: (output, state)
                return (noise(output[0]),) + output[1:]
            return noise(output)

        return add_noise

    def set_sigma(self, sigma: float) -> None:
        for noise in self.noise.values():
            noise.sigma = float(sigma)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> NoiseInjection:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def inject_noise(model: nn.Module, sigma: float, where: str | Sequence[str] = "all", mode: str = "additive") -> NoiseInjection:
    """Put ``GaussianNoise(sigma, mode)`` after every module (``where="all"``) or after the named
    ones (the per-layer study)."""
    return NoiseInjection(model, sigma, where, mode)


class GateNoise(ForwardOverrides):
    """Deep noise injection: additive Gaussian noise on every gate pre-activation of every time
    step of every nn.LSTM / nn.GRU / nn.RNN in ``model``. ``relative=True`` scales the noise by
    the pre-activation's own std (sigma is then a noise-to-signal ratio). The layers keep their
    parameters; their forward runs ``recurrent.run_recurrent`` until ``remove()``."""

    def __init__(self, model: nn.Module, sigma: float, relative: bool = False):
        if not sigma >= 0:
            raise ValueError(f"gate noise sigma must be >= 0, got {sigma}")
        self.sigma, self.relative = float(sigma), relative
        modules = [m for m in model.modules() if isinstance(m, (nn.LSTM, nn.GRU, nn.RNN))]
        if not modules:
            raise ValueError(f"{type(model).__name__} has no LSTM, GRU or RNN layer for gate noise")
        super().__init__(modules, lambda m: self._noisy_forward)

    def _hook(self, pre: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0:
            return pre
        scale = self.sigma * (pre.detach().std() if self.relative else 1.0)
        return pre + scale * torch.randn_like(pre)

    def _noisy_forward(self, module: nn.RNNBase, x, hx=None):
        return run_recurrent(shape_of(module), x, hx, torch_products(module), self._hook)
