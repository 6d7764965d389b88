"""Chip configuration: pydantic v2 models with units, range checks and published presets.

Conductances are in microsiemens (uS), times in seconds (s). Every model forbids unknown
fields, takes strict types and refuses inf and NaN. ``from_file``/``from_dict`` raise
``ConfigError`` with one line per problem naming the field (e.g. ``tile.adc.bits``);
``model_validate`` and ``with_values`` raise pydantic's ``ValidationError``. Noise and drift models are tagged unions on ``kind``: each kind
accepts only its own fields, so no setting is silently ignored.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .configdevice import *  # noqa: F403  (the device laws are part of the chip config, and importable from it)
from .configdevice import DeviceConfig, _Strict
from .configfile import ConfigError, read_mapping_file, short_repr, validate
from .configprogramming import OneShotProgramming, ProgrammingConfig, VerifyProgramming  # noqa: F401
from .costconfig import CostConfig
from .presets import PRESETS

__all__ = ["PRESETS", "ChipConfig", "ConfigError", "CostConfig", "ProgrammingConfig", "read_mapping_file"]


# ---------------------------------------------------------------- converters and tiles
class ConverterConfig(_Strict):
    """A DAC or ADC: signed, symmetric, uniform quantizer with 2^(bits-1) - 1 levels a side.

    ``range``: ``none`` (no clipping; only with ``bits=None``), ``fixed`` (``bound`` for every
    tile), ``calibrated`` (a bound per tile, set from data; ``bound`` is its starting value) or
    ``dynamic`` (DAC only: each input vector's abs-max per row block, aihwkit's noise management).
    aihwkit's names are accepted too and stored as ours: ``abs_max`` is ``dynamic``
    (``NoiseManagementType.ABS_MAX``) and ``constant`` is ``fixed`` (``CONSTANT``: one bound);
    aihwkit's ``NONE`` (inputs not scaled, still clipped at 1 and quantized) is ``fixed`` with
    bound 1, while our ``none`` is an ideal DAC.
    DAC bounds are in input units; ADC bounds in the converter's output units (see
    ``mapping.weight_scale``: a full-scale input on a full-scale weight gives 1, or with
    ``weight_scale: none`` the product in the weights' own units).
    """

    bits: int | None = Field(None, ge=2, le=24, description="resolution; None = no quantization")
    range: Literal["none", "fixed", "calibrated", "dynamic"] = Field(
        "none", description="none, fixed (alias constant), calibrated, dynamic (alias abs_max; DAC only)"
    )
    bound: float | None = Field(None, gt=0, description="clipping bound (units: see class doc)")

    @field_validator("range", mode="before")
    @classmethod
    def _aihwkit_names(cls, value: Any) -> Any:
        return RANGE_ALIASES.get(value, value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> ConverterConfig:
        if self.range == "none" and self.bits is not None:
            raise ValueError("range 'none' (no clipping) needs bits=None: a quantizer needs a range")
        if self.range in ("fixed", "calibrated") and self.bound is None:
            raise ValueError(f"range '{self.range}' needs a bound > 0")
        if self.range in ("none", "dynamic") and self.bound is not None:
            raise ValueError(f"range '{self.range}' takes no bound (got {self.bound})")
        return self

    @property
    def levels(self) -> int:
        """Quantization levels on each side of zero (0 when ideal)."""
        return 0 if self.bits is None else 2 ** (self.bits - 1) - 1


RANGE_ALIASES = {"abs_max": "dynamic", "constant": "fixed"}  # aihwkit's noise-management names -> ours


class TileConfig(_Strict):
    """One crossbar array and its periphery."""

    rows: int = Field(512, ge=1, le=65536, description="inputs (word lines) per tile")
    cols: int = Field(512, ge=1, le=65536, description="outputs (bit lines) per tile")
    dac: ConverterConfig = Field(default_factory=ConverterConfig)
    adc: ConverterConfig = Field(default_factory=ConverterConfig)
    out_noise: float = Field(
        0.0, ge=0, description="std of the additive output noise before the ADC, normalized units"
    )
    read_noise_path: Literal["output_referred", "per_device"] = Field(
        "output_referred",
        description="output_referred: one exact draw per output; per_device: every device's noise",
    )
    bound_management: Literal["none", "iterative"] = Field(
        "none",
        description=(
            "none: outputs beyond the ADC bound are clipped; iterative (aihwkit's BoundManagementType.ITERATIVE): "
            "a tile whose output for an input vector exceeds the ADC bound reads that vector again with its "
            "input scale halved, until no output exceeds it or a limit below is reached"
        ),
    )
    bm_max_factor: float = Field(
        1000.0, ge=1, le=2**20,
        description="aihwkit's max_bm_factor: no re-read once the input scale has been divided by more than this",
    )  # fmt: skip
    bm_max_res: float = Field(
        0.25, gt=0,
        description=(
            "aihwkit's max_bm_res: no re-read once the DAC step relative to the reduced input range "
            "(reduction / dac levels) exceeds this; not used with an unquantized DAC"
        ),
    )  # fmt: skip

    wire_resistance_ohm: float = Field(
        0.0, ge=0, le=1e3,
        description=(
            "resistance of one wire segment between neighbouring cells of a word line or a bit line, ohm "
            "(0 = ideal wires, off); read through its first-order model, valid while the attenuation it "
            "reports is small (docs/physics.md)"
        ),
    )  # fmt: skip

    @model_validator(mode="after")
    def _adc_range(self) -> TileConfig:
        if self.adc.range == "dynamic":
            raise ValueError("adc.range 'dynamic' is a DAC mode; an ADC range is none, fixed or calibrated")
        if self.bound_management == "iterative" and self.adc.range == "none":
            raise ValueError("bound_management 'iterative' needs an ADC bound to test (tile.adc.range fixed or calibrated)")
        return self


class MappingConfig(_Strict):
    """How weights become conductances."""

    weight_scale: Literal["column", "tile", "layer", "none"] = Field(
        "column",
        description=(
            "the abs-max |w| that maps onto g_max - g_min, and so the unit of the converters: column (per column of "
            "each tile), tile or layer: the largest weight of the group uses the full conductance range and output "
            "noise and ADC steps are relative to it (physical); none: the weights' own units, as aihwkit's default "
            "weight_scaling_omega = 0: devices still map each tile's abs-max onto g_max (as aihwkit's conductance "
            "converter does), but output noise, ADC bound and ADC steps are in raw weight units, so a layer with "
            "small weights sees relatively more converter noise"
        ),
    )
    bias: Literal["digital", "rows"] = Field(
        "digital", description="digital: added after the ADC; rows: stored in an extra row driven by a constant 1"
    )
    fold_batchnorm: bool = Field(True, description="fold a BatchNorm that follows a conv or linear layer into it")
    devices_per_polarity: int = Field(
        1, ge=1, le=16,
        description=(
            "devices per polarity of a weight (a unit cell of 2N devices): each holds the same target, programs, drifts and "
            "read-noises on its own, and their currents add on the bit line (HERMES uses 2)"
        ),
    )  # fmt: skip


class RuntimeConfig(_Strict):
    """How a chip is run, not what it is: never stored in a chip file (``load_chip(backend=, device=)``
    chooses again). Every backend computes the same chip: the same draws, products equal to float32 rounding
    (docs/determinism.md)."""

    backend: Literal["auto", "numba", "torch"] = Field(
        "auto",
        description=(
            "auto: the Numba kernels on the CPU, torch on any other device; numba: the Numba kernels (CPU only); "
            "torch: torch operations on the chip's device, the CPU included (tests and CI run it there)"
        ),
    )


class ChipConfig(_Strict):
    """A whole chip: devices, tiles and mapping. ``ChipConfig.preset(name)`` for published ones."""

    name: str = Field("custom", description="a label for reports")
    description: str = Field("", description="where the numbers come from")
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    tile: TileConfig = Field(default_factory=TileConfig)
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    drift_compensation: Literal["none", "global", "column"] = Field(
        "none", description="rescale each array's outputs by a probe read after drift: one factor, or one per column"
    )
    programming: ProgrammingConfig = Field(
        default_factory=OneShotProgramming, description="one_shot (the write-noise law) or verify (program-and-verify)"
    )
    cost: CostConfig = Field(default_factory=CostConfig, description="energy, latency and area per operation")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description="how the chip is run (not stored in chip files)")

    @classmethod
    def preset(cls, name: str) -> ChipConfig:
        """A named preset: one of ``PRESETS``; ``ConfigError`` lists them for any other name."""
        return cls.model_validate(_preset_fields(name))

    @classmethod
    def from_file(cls, path: str | Path) -> ChipConfig:
        """Load a YAML (.yaml/.yml) or JSON file. A top-level ``preset: NAME`` key starts from
        that preset and deep-merges the rest of the file over it. Errors (``ConfigError``) name the
        file and each field."""
        labelled = {"name": Path(path).name, **read_mapping_file(path, "chip config")}
        return cls.from_dict(labelled, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> ChipConfig:
        """Validate a dict; ``preset: NAME`` deep-merges the rest over that preset. A problem raises
        ``ConfigError`` with one line per field, each starting with ``source`` when given."""
        data = dict(data)
        base = data.pop("preset", None)
        if base is not None:
            overridden = bool(set(data) - {"name", "description"})
            data = {"name": f"{base} + overrides" if overridden else base, **data}  # a label that says what it is
            try:
                data = _deep_merge(_preset_fields(base), data)
            except ConfigError as exc:
                raise ConfigError(f"{source}: preset: {exc}" if source else f"preset: {exc}") from None
        return validate(cls, data, source)

    def with_values(self, values: dict[str, Any]) -> ChipConfig:
        """A copy with dotted paths set, e.g. ``{"tile.adc.bits": 6}``; validated again."""
        data = self.model_dump()
        for dotted, value in values.items():
            node = data
            parts = dotted.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise KeyError(f"{dotted!r}: {part!r} is not a section of the chip config")
                node = node[part]
            if parts[-1] not in node:
                raise KeyError(f"{dotted!r}: no field {parts[-1]!r} here")
            node[parts[-1]] = value
        return type(self).model_validate(data)

    def to_json(self) -> str:
        return self.model_dump_json()

    def chip_only(self) -> ChipConfig:
        """This config with the runtime options at their defaults: what a chip file stores."""
        return self.model_copy(update={"runtime": RuntimeConfig()})


def chip_config(spec: str) -> ChipConfig:
    """A preset name, or else a chip YAML/JSON file; a name that is neither lists the presets."""
    if spec in PRESETS:
        return ChipConfig.preset(spec)
    if not Path(spec).exists() and Path(spec).suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"{spec!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor a chip YAML/JSON file")
    return ChipConfig.from_file(spec)


def _preset_fields(name: Any) -> dict[str, Any]:
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown preset {short_repr(name)}; choose from {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "kind" not in value and "method" not in value:
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
