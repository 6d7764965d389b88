"""Swapping the forward of some modules for a while, leaving parameters and state_dict alone."""

from __future__ import annotations

import types
from collections.abc import Callable

from torch import nn


class ForwardOverrides:
    """Each module's forward becomes ``forward_for(module)`` (bound to it) until ``remove()``."""

    def __init__(self, modules: list[nn.Module], forward_for: Callable[[nn.Module], Callable]):
        self._modules = modules
        for module in modules:
            module.forward = types.MethodType(forward_for(module), module)

    def remove(self) -> None:
        for module in self._modules:
            module.__dict__.pop("forward", None)  # the class's forward shows through again
        self._modules = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
