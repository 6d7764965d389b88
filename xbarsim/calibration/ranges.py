"""DAC and ADC range calibration from data.

Weight matrices are calibrated one after the other in the order the network uses them, so that
each one sees inputs from already-calibrated layers: the calibration set runs through the chip
while the matrix records the magnitudes its DACs see (per row block, input units); its DAC
bounds are set; it runs again while the matrix records the analog partial sums its ADCs see
(per tile, normalized units, before read noise); its ADC bounds are set. A bound is the
abs-max, a percentile, or the clipping level that minimizes the mean squared quantization +
clipping error for the converter's bit width. Bounds are stored in the chip file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..crossbar.tile import TileArray
from ..mapping.chip import AnalogModel
from ..mapping.matrix import AnalogMatrix
from .chipstate import replace_config

METHODS = ("absmax", "percentile", "mse")
MAX_VALUES = 400_000  # values kept per converter group (a deterministic subsample beyond that)


class RangeRecorder:
    """Magnitudes seen by one TileArray's DACs (per row block) or ADCs (per tile)."""

    def __init__(self, what: str, seed: int = 0):
        self.what = what  # "dac" or "adc"
        self.values: dict[tuple[int, ...], list[np.ndarray]] = {}
        self._rng = np.random.default_rng(seed)

    def _keep(self, key: tuple[int, ...], values: np.ndarray) -> None:
        if values.size > MAX_VALUES:
            values = self._rng.choice(values, MAX_VALUES, replace=False)
        parts = self.values.setdefault(key, [])
        parts.append(values)
        if sum(p.size for p in parts) > 2 * MAX_VALUES:
            merged = np.concatenate(parts)
            self.values[key] = [self._rng.choice(merged, MAX_VALUES, replace=False)]

    def inputs(self, tiles: TileArray, x: np.ndarray) -> None:
        if self.what == "dac":
            for p, (r0, r1) in enumerate(zip(tiles.grid.row_edges[:-1], tiles.grid.row_edges[1:])):
                self._keep((p,), np.abs(x[:, r0:r1]).ravel())

    def partials(self, tiles: TileArray, y: np.ndarray) -> None:
        if self.what == "adc":
            for p in range(y.shape[0]):
                for q, (c0, c1) in enumerate(zip(tiles.grid.col_edges[:-1], tiles.grid.col_edges[1:])):
                    self._keep((p, q), np.abs(y[p, :, c0:c1]).ravel())

    def magnitudes(self, key: tuple[int, ...]) -> np.ndarray:
        return np.concatenate(self.values[key]) if key in self.values else np.zeros(0, np.float32)


def clipping_bound(magnitudes: np.ndarray, method: str, q: float, levels: int) -> float:
    """The bound for these |values|: abs-max, the q-th percentile, or the MSE-optimal clip for a
    signed quantizer with ``levels`` steps a side (abs-max when there is no quantization)."""
    v = magnitudes[np.isfinite(magnitudes)].astype(np.float64)
    if v.size == 0 or v.max() == 0:
        return 1.0
    if method == "absmax" or (method == "mse" and levels == 0):
        return float(v.max())
    if method == "percentile":
        return float(max(np.percentile(v, q), v.max() * 1e-6))
    candidates = v.max() * np.logspace(-3, 0, 120)
    errors = [np.mean((v - np.minimum(np.round(np.minimum(v, c) * levels / c) * c / levels, c)) ** 2) for c in candidates]
    return float(candidates[int(np.argmin(errors))])


@dataclass(frozen=True)
class LayerRanges:
    layer: str
    dac: np.ndarray | None  # per matrix: (P,) bounds, concatenated
    adc: np.ndarray | None  # per matrix: (P*Q,) bounds, concatenated


def switch_to_calibrated(model: AnalogModel) -> list[str]:
    """Make every converter with a ``fixed`` range ``calibrated`` (starting from its fixed bound,
    so the chip computes the same until ``calibrate_ranges`` sets the bounds). A ``dynamic`` DAC
    (per-vector abs-max) and ideal converters (``none``) are left as they are. Returns the
    stages switched ("dac", "adc")."""
    tile = model.chip.cfg.tile
    switched = [stage for stage in ("dac", "adc") if getattr(tile, stage).range == "fixed"]
    if switched:
        replace_config(model, model.chip.cfg.with_values({f"tile.{stage}.range": "calibrated" for stage in switched}))
    return switched


@torch.no_grad()
def _run(model: AnalogModel, x: torch.Tensor, batch_size: int) -> None:
    model.eval()
    for start in range(0, len(x), batch_size):
        model(x[start : start + batch_size].to(model.device))


def _use_order(model: AnalogModel, x: torch.Tensor) -> list:
    """The model's matrices in the order a forward pass first uses them."""
    order: list = []

    class FirstUse:
        def __init__(self, matrix):
            self.matrix = matrix

        def inputs(self, tiles, rows):
            if self.matrix not in order:
                order.append(self.matrix)

        def partials(self, tiles, y):
            pass

    matrices = list(model.chip.matrices())
    for matrix in matrices:
        matrix.tiles.recorder = FirstUse(matrix)
    try:
        _run(model, x[:1], 1)
    finally:
        for matrix in matrices:
            matrix.tiles.recorder = None
    return order + [m for m in matrices if m not in order]


def calibrate_ranges(model: AnalogModel, x: torch.Tensor, method: str = "percentile", q: float = 99.99,
                     batch_size: int = 256, progress: bool = False,
                     keep: Callable[[AnalogMatrix], bool] | None = None) -> list[LayerRanges]:  # fmt: skip
    """Set every calibrated converter range of ``model``'s chip from calibration inputs ``x``,
    matrix by matrix in the order of use (two passes of ``x`` per matrix). ``keep``, when given, is
    asked after each matrix's bounds are set; if it says no, that matrix gets its previous bounds
    back before the next one is calibrated. Returns the bounds per layer."""
    if method not in METHODS:
        raise ValueError(f"calibration method {method!r}: choose from {', '.join(METHODS)}")
    if not 0 < q <= 100:
        raise ValueError(f"percentile q must be in (0, 100], got {q}")
    cfg = model.chip.cfg.tile
    stages = [name for name in ("dac", "adc") if getattr(cfg, name).range == "calibrated"]
    if not stages:
        raise ValueError("this chip has no calibrated converter: set tile.dac.range and/or tile.adc.range to 'calibrated'")
    found: dict[int, dict[str, np.ndarray]] = {}
    order = _use_order(model, x)
    for matrix in tqdm(order, desc="calibrate", unit="matrix", disable=not progress, file=sys.stderr):
        n_p, n_q = matrix.tiles.grid.shape
        previous = {stage: getattr(matrix.tiles, f"{stage}_bounds").copy() for stage in stages}
        found[id(matrix)] = {}
        for stage in stages:
            recorder = matrix.tiles.recorder = RangeRecorder(stage)
            try:
                _run(model, x, batch_size)
            finally:
                matrix.tiles.recorder = None
            keys = [(p,) for p in range(n_p)] if stage == "dac" else [(p, q_) for p in range(n_p) for q_ in range(n_q)]
            levels = getattr(cfg, stage).levels
            bounds = np.array([clipping_bound(recorder.magnitudes(key), method, q, levels) for key in keys], np.float32)
            matrix.tiles.set_ranges(**{stage: bounds if stage == "dac" else bounds.reshape(n_p, n_q)})
            found[id(matrix)][stage] = bounds
        if keep is not None and not keep(matrix):
            matrix.tiles.set_ranges(**previous)
            found[id(matrix)] = {stage: bounds.ravel() for stage, bounds in previous.items()}
    return [
        LayerRanges(name, *(np.concatenate([found[id(m)][s] for m in layer.matrices()]) if s in stages else None for s in ("dac", "adc")))
        for name, layer in model.chip.layers.items()
    ]
