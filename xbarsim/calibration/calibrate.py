"""One calibration of a saved chip, as ``xbarsim calibrate`` runs it: what it changed and the
accuracy before and after.

Every decision is made on validation data (held out from the train split, apart from the
calibration inputs): each matrix's new converter bounds, and a drift-compensation switch, are
kept only when they do not lower the validation accuracy. The test split is only measured, before
and after, both at the same read noise (the chip's read counters are put back, so a later
``xbarsim eval`` sees exactly the "after" accuracy); the command refuses to save a chip whose test
accuracy fell, a veto that never chooses between candidates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..mapping.chip import AnalogModel
from ..mapping.matrix import AnalogMatrix
from .chipstate import (
    ConverterBounds,
    accuracy_from,
    bound_changes,
    converter_bounds,
    read_counters,
    reads_restored,
    replace_config,
    restore_read_counters,
)
from .drift import set_drift_compensation
from .ranges import calibrate_ranges, switch_to_calibrated


@dataclass
class CalibrationReport:
    """What ``calibrate_chip`` did. Accuracies are in [0, 1]: validation decides, test is reported."""

    accuracy_before: float  # test
    accuracy_after: float  # test
    method: str | None  # the range-calibration method, None when the ranges were not calibrated
    q: float
    validation_before: float = 0.0
    validation_after: float = 0.0
    switched: list[str] = field(default_factory=list)  # converter stages switched from fixed to calibrated
    ranges: list[tuple[ConverterBounds, ConverterBounds]] = field(default_factory=list)  # (before, after) that differ
    reverted: list[str] = field(default_factory=list)  # matrices whose new bounds lowered the validation accuracy
    compensation: tuple[str, str] = ("none", "none")  # drift compensation (before, after)
    refused_compensation: str | None = None  # the switch asked for, not kept: it lowered the validation accuracy
    untouched: list[tuple[str, str]] = field(default_factory=list)  # (stage, range) with nothing to calibrate
    asked: bool = False  # whether range calibration was asked for (--ranges)

    @property
    def changed(self) -> bool:
        return bool(self.ranges or self.switched) or self.compensation[0] != self.compensation[1]

    @property
    def fell(self) -> bool:
        """Whether the test accuracy after is lower than before (the chip must not be saved)."""
        return self.accuracy_after < self.accuracy_before


def calibratable(model: AnalogModel) -> bool:
    """Whether the chip has converter ranges that calibration sets (range ``calibrated``)."""
    tile = model.chip.cfg.tile
    return "calibrated" in (tile.dac.range, tile.adc.range)


def calibrate_chip(model: AnalogModel, x_calibration: torch.Tensor, validation: tuple[torch.Tensor, torch.Tensor],
                   x_test: torch.Tensor, y_test: torch.Tensor, ranges: str | None = None, q: float = 99.99,
                   compensation: str | None = None, progress: bool = False) -> CalibrationReport:  # fmt: skip
    """Calibrate ``model`` in place and report.

    ``ranges``: a method of ``calibrate_ranges`` (absmax, percentile, mse); fixed converter ranges
    are switched to calibrated first. ``None``: the chip's calibrated ranges (if any) are set with
    the percentile method, and nothing is switched. ``compensation``: switch drift compensation
    (none, global, column). A matrix's new bounds and the compensation switch are kept only when
    the accuracy on ``validation`` (inputs, labels; held out, not the calibration inputs) does not
    fall. The accuracy on ``x_test``/``y_test`` is measured before and after, never used to decide.
    Every accuracy is taken at the chip's current read counters, which are left as they were."""
    counters = read_counters(model)
    before_cfg, before_bounds = model.chip.cfg, converter_bounds(model)
    x_val, y_val = validation
    report = CalibrationReport(accuracy_from(model, counters, x_test, y_test), 0.0, None, q, asked=ranges is not None)
    best = report.validation_before = accuracy_from(model, counters, x_val, y_val)

    def keep(matrix: AnalogMatrix) -> bool:
        nonlocal best
        with reads_restored(model):  # the calibration reads go on as if this check had not read the chip
            score = accuracy_from(model, counters, x_val, y_val)
        if score < best:
            report.reverted.append(matrix.name)
            return False
        best = score
        return True

    if ranges is not None:
        report.switched = switch_to_calibrated(model)
    if calibratable(model):
        report.method = ranges or "percentile"
        calibrate_ranges(model, x_calibration, report.method, q, progress=progress, keep=keep)
    if compensation is not None and compensation != model.chip.cfg.drift_compensation:
        previous = model.chip.cfg.drift_compensation
        set_drift_compensation(model, compensation)
        score = accuracy_from(model, counters, x_val, y_val)
        if score < best:
            set_drift_compensation(model, previous)
            report.refused_compensation = compensation
        else:
            best = score
    report.validation_after = best
    if report.switched and not _bounds_moved(before_bounds, converter_bounds(model)):
        replace_config(model, model.chip.cfg.with_values({f"tile.{stage}.range": "fixed" for stage in report.switched}))
        report.switched = []  # every new bound was reverted: the fixed ranges stay as they were
    restore_read_counters(model, counters)
    report.ranges = bound_changes(before_bounds, converter_bounds(model))
    report.compensation = (before_cfg.drift_compensation, model.chip.cfg.drift_compensation)
    tile = model.chip.cfg.tile
    report.untouched = [(stage, getattr(tile, stage).range) for stage in ("dac", "adc") if getattr(tile, stage).range in ("none", "dynamic")]
    report.accuracy_after = accuracy_from(model, counters, x_test, y_test) if report.changed else report.accuracy_before
    return report


def _bounds_moved(before: list[ConverterBounds], after: list[ConverterBounds]) -> bool:
    """Whether any bound differs (the range modes aside)."""
    return any(not np.array_equal(b.bounds, a.bounds) for b, a in zip(before, after))


_WHY_UNTOUCHED = {"none": "an ideal converter, no range", "dynamic": "per-vector abs-max, set by every input"}


def format_report(report: CalibrationReport, test_name: str) -> str:
    """The lines ``xbarsim calibrate`` prints: every change, then the validation and test accuracy
    before and after."""
    lines = []
    for stage in report.switched:
        lines.append(f"{stage.upper()} ranges switched from fixed to calibrated (--ranges {report.method})")
    if report.method is not None:
        detail = f", q = {report.q:g}" if report.method == "percentile" else ""
        lines.append(f"converter ranges calibrated ({report.method}{detail}); bounds per matrix, before -> after:")
        for before, after in report.ranges:
            unit = "input units, one per row block" if before.stage == "dac" else "normalized, one per tile"
            lines.append(f"  {before.matrix:<28} {before.stage.upper()}  {before.describe()} -> {after.describe()}  [{unit}]")
        if not report.ranges:
            lines.append("  (no bound moved)")
        if report.reverted:
            lines.append(f"  kept as they were (their new bounds lowered the validation accuracy): {', '.join(report.reverted)}")
    for stage, mode in report.untouched:
        lines.append(f"{stage.upper()}: {mode} range ({_WHY_UNTOUCHED[mode]}): nothing to calibrate")
    old, new = report.compensation
    if old != new:
        lines.append(f"drift compensation: {old} -> {new} (reference read again at t = 0)")
    elif report.refused_compensation is not None:
        lines.append(f"drift compensation: {new} (kept: switching to {report.refused_compensation} lowered the validation accuracy)")
    else:
        lines.append(f"drift compensation: {new} (unchanged; --compensation none|global|column switches it)")
    if report.method is None and not report.changed and report.asked:
        lines.append("nothing to calibrate: this chip's converters have no fixed or calibrated range to set from data.")
    elif report.method is None and not report.changed:
        lines.append("nothing to calibrate: this chip has no 'calibrated' converter ranges and no change was asked for. "
                     "Pass --ranges percentile (or absmax, mse) to switch its fixed ranges to calibrated ones and set "
                     "them from data, or --compensation to switch drift compensation.")  # fmt: skip
    lines.append(f"validation accuracy (decides what is kept): {100 * report.validation_before:.2f}% before -> "
                 f"{100 * report.validation_after:.2f}% after")  # fmt: skip
    lines.append(f"{test_name} accuracy: {100 * report.accuracy_before:.2f}% before -> {100 * report.accuracy_after:.2f}% after"
                 + ("" if report.changed else " (unchanged)"))  # fmt: skip
    return "\n".join(lines)
