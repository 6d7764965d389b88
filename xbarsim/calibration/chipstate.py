"""The chip state that calibration commands must touch carefully: the read counters, the
converter bounds and the chip's configuration.

Every inference read advances an array's read counter, and the counter picks the read noise of
the next input vector (``TileArray``). A command that only *measures* a chip (calibration inputs,
accuracy before and after, training denoising blocks) restores the counters before it saves, so
that a later ``xbarsim eval`` of the saved chip reports what it would have reported before, apart
from what the command deliberately changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..config import ChipConfig
from ..mapping.chip import AnalogModel
from ..models.training import accuracy


def read_counters(model: AnalogModel) -> list[int]:
    """Every array's read counter, in the chip's matrix order."""
    return [m.tiles.reads for m in model.chip.matrices()]


def restore_read_counters(model: AnalogModel, counters: list[int]) -> None:
    """Put the read counters back to ``counters`` (from ``read_counters`` of the same chip)."""
    matrices = list(model.chip.matrices())
    if len(counters) != len(matrices):
        raise ValueError(f"{len(counters)} read counters for a chip of {len(matrices)} matrices")
    for matrix, reads in zip(matrices, counters):
        matrix.tiles.reads = int(reads)


@contextlib.contextmanager
def reads_restored(model: AnalogModel) -> Iterator[list[int]]:
    """Inside: read the chip freely; on exit its read counters are what they were on entry."""
    counters = read_counters(model)
    try:
        yield counters
    finally:
        restore_read_counters(model, counters)


def accuracy_from(model: AnalogModel, counters: list[int], x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy with the read counters at ``counters`` (the read noise ``xbarsim eval`` sees on a
    chip saved with them), leaving them there afterwards: comparisons at equal read noise."""
    restore_read_counters(model, counters)
    try:
        return accuracy(model, x, y)
    finally:
        restore_read_counters(model, counters)


def replace_config(model: AnalogModel, cfg: ChipConfig) -> None:
    """Give the chip and every array ``cfg`` (a changed periphery setting: converter ranges,
    drift compensation), then read the drift-compensation references again at t = 0."""
    model.chip.cfg = cfg
    for matrix in model.chip.matrices():
        matrix.tiles.cfg = cfg
        matrix.tiles.take_reference()


@dataclass(frozen=True)
class ConverterBounds:
    """One converter stage of one weight matrix: its range mode and bounds (DAC: one per row
    block, input units; ADC: one per tile, normalized units)."""

    matrix: str
    stage: str  # "dac" or "adc"
    range: str  # none, fixed, calibrated, dynamic
    bounds: np.ndarray

    def describe(self) -> str:
        if self.range in ("none", "dynamic"):
            return "no bound" if self.range == "none" else "per-vector abs-max"
        low, high = float(self.bounds.min()), float(self.bounds.max())
        text = f"{low:.4g}" if low == high else f"{low:.4g}..{high:.4g}"
        return f"{text} ({self.range})"


def converter_bounds(model: AnalogModel) -> list[ConverterBounds]:
    """A snapshot of every matrix's DAC and ADC ranges, in the chip's matrix order."""
    tile = model.chip.cfg.tile
    return [
        ConverterBounds(m.name, stage, getattr(tile, stage).range, getattr(m.tiles, f"{stage}_bounds").copy())
        for m in model.chip.matrices()
        for stage in ("dac", "adc")
    ]


def bound_changes(before: list[ConverterBounds], after: list[ConverterBounds]) -> list[tuple[ConverterBounds, ConverterBounds]]:
    """The (before, after) pairs that differ in range mode or bounds."""
    return [(b, a) for b, a in zip(before, after) if b.range != a.range or not np.array_equal(b.bounds, a.bounds)]
