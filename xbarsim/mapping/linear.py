"""Which torch layers map as a Linear: ``nn.Linear`` and its subclasses, and linear-like classes of other
libraries that the user registers once (``register_linear``), without xbarsim depending on them.

Hugging Face GPT-2's ``Conv1D`` is such a class: a weight of shape (in, out) and ``y = x W + b``.
``xbarsim.register_linear(Conv1D, weight_layout="in_out")`` makes ``map_model`` put every ``Conv1D``
on tiles as a Linear (and lets ``load_chip(path, model=...)`` rebuild such a chip).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

LAYOUTS = ("out_in", "in_out")
_REGISTERED: dict[type[nn.Module], str] = {}


class MappingWarning(UserWarning):
    """Mapping did something the user may not expect (it names the layer)."""


def register_linear(cls: type[nn.Module], weight_layout: str = "in_out") -> None:
    """Map every instance of ``cls`` as a Linear: its ``weight`` parameter is (out, in) (``"out_in"``, as
    ``nn.Linear``) or (in, out) (``"in_out"``, as Hugging Face's ``Conv1D``), its ``bias`` (out,) or None,
    and its forward computes ``y = x W^T + b`` (or ``x W + b``) over the last dimension."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_linear takes an nn.Module class, got {cls!r}")
    if weight_layout not in LAYOUTS:
        raise ValueError(f"weight_layout {weight_layout!r}: choose from {', '.join(LAYOUTS)}")
    _REGISTERED[cls] = weight_layout


def unregister_linear(cls: type[nn.Module]) -> None:
    """Undo ``register_linear(cls)``."""
    _REGISTERED.pop(cls, None)


def is_linear(module: nn.Module) -> bool:
    """Whether ``module`` maps as a Linear: an ``nn.Linear`` (or a subclass) or a registered class."""
    return isinstance(module, nn.Linear) or _layout(module) is not None


def _layout(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "out_in"
    return next((layout for cls, layout in _REGISTERED.items() if isinstance(module, cls)), None)


def linear_weight(module: nn.Module, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight (out, in), bias (out,) or None) of a layer that maps as a Linear. A subclass of ``nn.Linear``
    with its own forward is mapped as ``x W^T + b`` all the same, with a ``MappingWarning`` naming it."""
    layout = _layout(module)
    weight = getattr(module, "weight", None)
    if layout is None or not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(f"layer {name!r} of type {type(module).__name__} has no 2-D weight to map as a Linear")
    if isinstance(module, nn.Linear) and type(module).forward is not nn.Linear.forward:
        warnings.warn(f"layer {name!r}: {type(module).__name__} overrides nn.Linear.forward; it is mapped as "
                      f"y = x W^T + b (its own forward does not run on the chip)", MappingWarning, stacklevel=3)  # fmt: skip
    bias = getattr(module, "bias", None)
    return (weight if layout == "out_in" else weight.t()), (bias if isinstance(bias, torch.Tensor) else None)


def linear_features(module: nn.Module) -> tuple[int, int, bool]:
    """(in_features, out_features, has a bias) of a layer that maps as a Linear."""
    weight = module.weight
    n_in, n_out = (weight.shape[1], weight.shape[0]) if _layout(module) == "out_in" else (weight.shape[0], weight.shape[1])
    return int(n_in), int(n_out), isinstance(getattr(module, "bias", None), torch.Tensor)
