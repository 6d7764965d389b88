"""Drift compensation, switched and inspected per chip (the mechanism is in the chip's periphery:
``crossbar/laws/compensation.py``): a probe read right after programming is the reference; after
``drift(t)`` each array's outputs are scaled by reference / probe read now."""

from __future__ import annotations

import numpy as np

from ..mapping.chip import AnalogModel
from .chipstate import replace_config

MODES = ("none", "global", "column")


def set_drift_compensation(model: AnalogModel, mode: str) -> None:
    """Turn drift compensation to ``mode`` (none, global, column) on every array of the chip;
    the references are read again at t = 0 and the chip stays at its drift time."""
    if mode not in MODES:
        raise ValueError(f"drift compensation {mode!r}: choose from {', '.join(MODES)}")
    replace_config(model, model.chip.cfg.model_copy(update={"drift_compensation": mode}))


def compensation_gains(model: AnalogModel) -> dict[str, float]:
    """Mean digital gain per layer now (1.0 without compensation or right after programming)."""
    gains = {}
    for name, layer in model.chip.layers.items():
        values = [np.mean(m.tiles.gain) if m.tiles.gain is not None else 1.0 for m in layer.matrices()]
        gains[name] = float(np.mean(values))
    return gains
