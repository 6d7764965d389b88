"""SweepSpec: what a sweep evaluates, over which axes, how often (docs/sweeps.md).

Axes are dotted chip-config paths (``device.read_noise.sigma``, ``tile.adc.bits``, ...) plus the
special ones: ``drift.t`` (seconds after programming) and the noise axis, ``noise_level`` (or its
older name ``activation_noise``): the level of the spec's ``noise`` kind, for the midpoint metric.
Activation noise acts on the mapped chip; the other kinds act on the trained float network, so
their sweep has the noise axis alone. Values are lists or ``logspace(a, b, n)`` /
``linspace(a, b, n)`` with at most ``MAX_AXIS_VALUES`` values (checked before anything is allocated).
Every value is checked against the chip config before anything runs. A spec is data: the model is
a checkpoint file or a zoo name, never an importable path.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import ChipConfig, chip_config, read_mapping_file
from ..configfile import format_validation_error, short_repr, strict_model_of, validate
from ..errors import XbarsimError
from ..limits import MAX_REPEATS, MAX_SAMPLES, MAX_SEED, check_drift_time, check_seed
from ..models import zoo
from ..models.quant import QATConfig
from ..models.training import TrainConfig
from .noise_kinds import ActivationNoise, ChipNoise, NoiseKind, parse_noise_kind

DRIFT_AXIS = "drift.t"
NOISE_AXIS = "activation_noise"  # the noise axis's first name: activation noise only
LEVEL_AXIS = "noise_level"  # the noise axis for any kind
NOISE_AXES = (NOISE_AXIS, LEVEL_AXIS)
SPECIAL_AXES = (DRIFT_AXIS, *NOISE_AXES)
CHIP_NOISE = "activation"  # the one noise kind a sweep applies on the mapped chip
SWEEP_NOISE_HELP = "activation (on the mapped chip), gate, gate:relative, weight or bayesft (on the float network)"
_LEFT_OUT_AT_DEFAULT = {"noise": CHIP_NOISE}  # fields added later: at their default they keep old digests
Value = float | int | str | bool | None
MAX_AXIS_VALUES = 10_000  # per axis: validating a value against the chip config costs ~0.1 ms
DEFAULT_MAX_ROWS = 100_000  # (point, repeat) rows of one sweep, unless the user raises it
COST_METRICS = ("energy_per_inference", "latency")  # nJ and us per inference, with metrics: [..., cost]


class ModelSpec(BaseModel):
    """A trained checkpoint, or a zoo model trained (once, seeded) before the sweep."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    checkpoint: str | None = Field(None, description="checkpoint file (xbarsim checkpoint or state_dict with zoo)")
    zoo: str | None = Field(None, description="zoo model name (mlp, lenet5, vgg11, resnet18, lstm, gru); never a module path")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="constructor arguments")
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields when training a zoo model")

    @field_validator("zoo")
    @classmethod
    def _zoo_name(cls, name: str | None) -> str | None:
        if name is not None and name not in zoo.ZOO:
            raise ValueError(f"unknown zoo model {short_repr(name)}; the zoo has {', '.join(sorted(zoo.ZOO))} "
                             f"(a spec names a zoo model, never a module path)")  # fmt: skip
        return name

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if self.checkpoint is None and self.zoo is None:
            raise ValueError("give a checkpoint or a zoo model name")
        if self.checkpoint is not None and self.train:
            raise ValueError("a checkpoint is already trained: remove 'train'")
        if self.train:
            self.recipe(seed=0)
        return self

    def recipe(self, seed: int) -> TrainConfig:
        """The training recipe of ``train`` (its ``seed`` defaults to the spec's): every field
        checked strictly; ``qat`` a mapping of QAT fields, ``hwa`` a preset name or chip file."""
        fields = validate(_TRAIN_SPEC, {"seed": seed, **self.train}, "train").model_dump()
        try:
            qat = QATConfig(**fields["qat"]) if fields["qat"] is not None else None
            hwa = chip_config(fields["hwa"]) if fields["hwa"] is not None else None
            return TrainConfig(**{**fields, "qat": qat, "hwa": hwa})
        except ValueError as exc:
            raise ValueError(f"train: {exc}") from None


_TRAIN_SPEC = strict_model_of(TrainConfig, {"hwa": (str | None, None)})


def parse_values(spec: Any, axis: str = "") -> list[Value]:
    """A list of values, or ``logspace(a, b, n)`` / ``linspace(a, b, n)``; at most ``MAX_AXIS_VALUES``.

    ``n`` is checked before anything is allocated, so ``linspace(0, 1, 1e8)`` is refused at once.
    """
    where = f"axis {axis}" if axis else "axis values"
    if isinstance(spec, str):
        text = spec.replace(" ", "")
        for name, fn in (("logspace", np.logspace), ("linspace", np.linspace)):
            if text.startswith(name + "(") and text.endswith(")"):
                try:
                    low, high, n = (float(v) for v in text[len(name) + 1 : -1].split(","))
                except ValueError:
                    break
                if not (math.isfinite(low) and math.isfinite(high)):
                    raise ValueError(f"{where}: {short_repr(spec)}: the bounds must be finite numbers")
                if not (n.is_integer() and 1 <= n <= MAX_AXIS_VALUES):
                    raise ValueError(f"{where}: {short_repr(spec)} asks for {n:g} values; give a whole number from 1 to {MAX_AXIS_VALUES:,}")
                with np.errstate(over="ignore"):  # an overflow is refused just below
                    values = [float(v) for v in fn(low, high, int(n))]
                if not all(math.isfinite(v) for v in values):
                    raise ValueError(f"{where}: {short_repr(spec)} gives values too large for a float")
                return values
        raise ValueError(f"{where}: {short_repr(spec)}: use a list, logspace(a, b, n) or linspace(a, b, n)")
    if not isinstance(spec, list) or not spec:
        raise ValueError(f"{where}: values must be a non-empty list")
    if len(spec) > MAX_AXIS_VALUES:
        raise ValueError(f"{where}: {len(spec):,} values, more than {MAX_AXIS_VALUES:,} per axis")
    return list(spec)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    name: str = "sweep"
    model: ModelSpec
    data: str = Field("digits", description="digits, synthetic, mnist:PATH, cifar10:PATH, pydoc or text:PATH")
    test_samples: int | None = Field(None, ge=1, le=MAX_SAMPLES, description="evaluate on the first N test samples")
    chip: str | dict[str, Any] = Field("pcm", description="a preset name or a chip config (may start from 'preset:')")
    axes: dict[str, list[Value] | str]
    mode: Literal["grid", "zip"] = "grid"
    repeats: int = Field(3, ge=1, le=MAX_REPEATS, description="chips (programming seeds) per point")
    seed: int = Field(0, description="0 to 2**63 - 1; repeat r programs its chips with seed + r")
    metrics: list[Literal["accuracy", "midpoint", "cost", "bpc"]] = Field(default_factory=lambda: ["accuracy"])
    noise: str = Field(CHIP_NOISE, description="the kind of noise of the noise axis: activation (after every module of "
                       "the mapped chip), or gate, gate:relative, weight, bayesft (on the trained float network, not the chip)")  # fmt: skip

    @field_validator("seed")
    @classmethod
    def _seed(cls, seed: int) -> int:
        return check_seed(seed, "the seed")

    @field_validator("axes")
    @classmethod
    def _values(cls, axes: dict[str, Any]) -> dict[str, list[Value]]:
        if not axes:
            raise ValueError("give at least one axis")
        return {path: parse_values(values, path) for path, values in axes.items()}

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        base = self.chip_config()
        for path, values in self.axes.items():
            for value in values:
                if path == DRIFT_AXIS:
                    check_drift_time(value, f"axis {path}: each value")
                    continue
                if path in SPECIAL_AXES:
                    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (math.isfinite(value) and value >= 0):
                        raise ValueError(f"axis {path}: values must be finite numbers >= 0, got {value!r}")
                    continue
                try:
                    base.with_values({path: value})
                except KeyError as exc:
                    raise ValueError(f"axis {path}: {exc.args[0]}") from None
                except ValidationError as exc:
                    raise ValueError("axis " + format_validation_error(exc, ChipConfig)) from None
        if self.seed + self.repeats - 1 > MAX_SEED:
            raise ValueError(f"seed + repeats - 1 must be <= 2**63 - 1 (repeat r uses seed + r); got seed {self.seed}")
        if self.mode == "zip" and len({len(v) for v in self.axes.values()}) > 1:
            raise ValueError("zipped axes must all have the same number of values")
        self._check_noise()
        if "midpoint" in self.metrics and len(self.axes.get(self.noise_axis or "", [])) < 5:
            raise ValueError("the midpoint metric needs an activation_noise axis (or noise_level) with at least 5 values")
        if "cost" in self.metrics and self.noise != CHIP_NOISE:
            raise ValueError(f"the cost metric needs the mapped chip: noise {self.noise!r} acts on the float network")
        return self

    def stored_metrics(self) -> tuple[str, ...]:
        """The metrics stored per row: accuracy, with ``bpc`` the bits per character of a language model, and
        with ``cost`` the energy per inference (nJ) and latency (us)."""
        return ("accuracy", *(("bpc",) if "bpc" in self.metrics else ()), *(COST_METRICS if "cost" in self.metrics else ()))

    @property
    def curve_metric(self) -> str:
        """What the midpoint is fitted on: bits per character with ``bpc``, else accuracy."""
        return "bpc" if "bpc" in self.metrics else "accuracy"

    def _check_noise(self) -> None:
        try:
            kind = self.noise_kind()
        except XbarsimError:
            raise ValueError(f"noise {self.noise!r}: not a kind of noise; choose from {SWEEP_NOISE_HELP}") from None
        if isinstance(kind, ChipNoise):
            raise ValueError(f"noise {self.noise!r}: a sweep scales a chip's noise with its own axes (the spec's chip "
                             f"and e.g. device.write_noise.scale, device.read_noise.scale); choose from {SWEEP_NOISE_HELP}")  # fmt: skip
        if all(axis in self.axes for axis in NOISE_AXES):
            raise ValueError(f"give one noise axis: {NOISE_AXIS} or {LEVEL_AXIS}, not both")
        if self.noise == CHIP_NOISE:
            return
        if NOISE_AXIS in self.axes:
            raise ValueError(f"axis {NOISE_AXIS} is for noise: activation; name the axis of noise {self.noise!r} {LEVEL_AXIS}")
        others = [axis for axis in self.axes if axis != LEVEL_AXIS]
        if LEVEL_AXIS not in self.axes or others:
            raise ValueError(f"noise {self.noise!r} acts on the trained float network, not on the chip: its sweep has "
                             f"one axis, {LEVEL_AXIS} (got {', '.join(self.axes)})")  # fmt: skip

    def noise_kind(self) -> NoiseKind:
        """The kind of noise of the noise axis (``noise_kinds``)."""
        kind = parse_noise_kind(self.noise)
        if isinstance(kind, ActivationNoise) and self.noise != CHIP_NOISE:
            raise XbarsimError(f"noise {self.noise!r}: write activation noise as {CHIP_NOISE!r}")
        return kind

    @property
    def noise_axis(self) -> str | None:
        """The spec's noise axis (``noise_level`` or ``activation_noise``), or None."""
        return next((axis for axis in NOISE_AXES if axis in self.axes), None)

    def noise_label(self) -> str:
        """The noise kind and what its level means, for reports and plots."""
        kind = self.noise_kind()
        where = "on the mapped chip" if self.noise == CHIP_NOISE else "on the float network"
        return f"{kind.describe()}, {where}; level: {kind.level_name}"

    @classmethod
    def from_file(cls, path: str | Path) -> SweepSpec:
        """Load a YAML or JSON spec; every error (``ConfigError``) names the file and the field."""
        return validate(cls, read_mapping_file(path, "sweep spec"), str(path))

    def chip_config(self) -> ChipConfig:
        return chip_config(self.chip) if isinstance(self.chip, str) else ChipConfig.from_dict(self.chip, source="chip")

    def row_count(self) -> int:
        """(point, repeat) rows of the sweep, counted without expanding the grid."""
        lengths = [len(v) for v in self.axes.values()]
        return (math.prod(lengths) if self.mode == "grid" else lengths[0]) * self.repeats

    def check_size(self, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        """Refuse a sweep of more than ``max_rows`` (point, repeat) rows, before anything runs."""
        rows = self.row_count()
        if rows > max_rows:
            raise XbarsimError(
                f"sweep {self.name!r} has {rows:,} rows ({rows // self.repeats:,} points x {self.repeats} repeats), "
                f"over the limit of {max_rows:,}: if you mean it, raise the limit (--max-points {rows})"
            )

    def seed_of(self, repeat: int) -> int:
        """The programming seed of a repeat: the same chips at every point (paired comparisons)."""
        return self.seed + repeat

    def points(self) -> list[dict[str, Value]]:
        """Every point: {axis: value}, in a fixed order (grid: the last axis varies fastest)."""
        names = list(self.axes)
        combos = itertools.product(*self.axes.values()) if self.mode == "grid" else zip(*self.axes.values())
        return [dict(zip(names, combo)) for combo in combos]

    def digest(self) -> str:
        """Identifies the spec (its canonical JSON): a store belongs to exactly one."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def canonical_json(self) -> str:
        """JSON with sorted keys, except that the axes keep their order: it decides the points' order,
        so two specs that list the same axes in another order are different sweeps. Fields added after
        stores existed are left out at their default, so those stores keep their digest."""
        data = self.model_dump()
        for field, default in _LEFT_OUT_AT_DEFAULT.items():
            if data[field] == default:
                del data[field]
        axes = json.dumps(data.pop("axes"), separators=(",", ":"))
        return '{"axes":' + axes + "," + json.dumps(data, sort_keys=True, separators=(",", ":"))[1:]
