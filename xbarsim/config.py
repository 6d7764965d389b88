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
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .configfile import ConfigError, read_mapping_file, short_repr, validate
from .costconfig import CostConfig
from .presets import PRESETS

__all__ = ["PRESETS", "ChipConfig", "ConfigError", "CostConfig", "read_mapping_file"]


class _Strict(BaseModel):
    """Unknown fields are errors; types are strict (a bool is not an int, 8.0 is not a bit count, "8" is
    not a number; an int is a fine float); inf and NaN are refused everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False)


# ---------------------------------------------------------------- programming (write) error
class NoWriteNoise(_Strict):
    """Devices are programmed exactly to their targets."""

    kind: Literal["none"] = "none"


class AbsoluteWriteNoise(_Strict):
    """``G = G_target + N(0, sigma^2)``, the same std for every device."""

    kind: Literal["absolute"] = "absolute"
    sigma: float = Field(ge=0, description="standard deviation of the write error, uS")


class ProportionalWriteNoise(_Strict):
    """``G = G_target + N(0, (sigma * G_target)^2)``."""

    kind: Literal["proportional"] = "proportional"
    sigma: float = Field(ge=0, le=10, description="write-error std as a fraction of G_target")


class PCMWriteNoise(_Strict):
    """IBM's PCM polynomial: std(uS) = scale * (c0 + c1 * g + c2 * g^2), g = G_target / g_max."""

    kind: Literal["pcm"] = "pcm"
    c0: float = Field(0.26348, description="constant term, uS (Nandakumar et al., IBM PCM model)")
    c1: float = Field(1.9650, description="linear term, uS")
    c2: float = Field(-1.1731, description="quadratic term, uS")
    scale: float = Field(1.0, ge=0, description="multiplies the polynomial (1 = published model)")


WriteNoise = Annotated[
    Union[NoWriteNoise, AbsoluteWriteNoise, ProportionalWriteNoise, PCMWriteNoise],
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------- read noise
ReadTime = Literal["per_read", "per_epoch"]
_READ_TIME_DESCRIPTION = (
    "per_read: white noise, a fresh draw for every input vector; per_epoch: a deviation per device drawn "
    "once per read epoch (programming, a drift to a new time, or chip.new_read_epoch()) and frozen across "
    "the reads inside it, as 1/f noise is (IBM's PCM model: Nandakumar et al., ICECS 2019; Joshi et al., "
    "Nat. Commun. 2020; aihwkit applies it once when the weights are drifted to t). per_epoch costs nothing per read"
)


class NoReadNoise(_Strict):
    """Reads return the stored conductance exactly."""

    kind: Literal["none"] = "none"


class AdditiveReadNoise(_Strict):
    """Every read adds ``N(0, sigma^2)`` to every device."""

    kind: Literal["additive"] = "additive"
    sigma: float = Field(ge=0, description="read-noise std per device, uS")
    time: ReadTime = Field("per_read", description=_READ_TIME_DESCRIPTION)


class ProportionalReadNoise(_Strict):
    """Every read adds ``N(0, (sigma * G)^2)`` to every device."""

    kind: Literal["proportional"] = "proportional"
    sigma: float = Field(ge=0, le=10, description="read-noise std as a fraction of G")
    time: ReadTime = Field("per_read", description=_READ_TIME_DESCRIPTION)


class PCMReadNoise(_Strict):
    """IBM's PCM 1/f read noise: std = |G(t)| * Q * sqrt(ln((t + t0 + t_read) / (2 t_read))),
    Q = min(q_coeff / max(g^q_exponent, 1e-3), q_max), g = G_prog / g_max (the programmed
    conductance, as aihwkit's PCMLikeNoiseModel), t since programming. IBM's model is ``per_epoch``."""

    kind: Literal["pcm"] = "pcm"
    q_coeff: float = Field(0.0088, gt=0, description="Q at g = 1 (dimensionless)")
    q_exponent: float = Field(0.65, ge=0, description="exponent of g in Q")
    q_max: float = Field(0.2, gt=0, description="upper bound of Q")
    t_read_s: float = Field(250e-9, gt=0, description="duration of one read, s")
    scale: float = Field(1.0, ge=0, description="multiplies the std (1 = published model)")
    time: ReadTime = Field("per_read", description=_READ_TIME_DESCRIPTION)


SingleReadNoise = Annotated[
    Union[NoReadNoise, AdditiveReadNoise, ProportionalReadNoise, PCMReadNoise],
    Field(discriminator="kind"),
]


class CombinedReadNoise(_Strict):
    """Several independent read-noise terms at once, each with its own time character, e.g. a
    per-epoch PCM 1/f part plus a per-read white part: the variances of the parts of one time
    character add."""

    kind: Literal["combined"] = "combined"
    parts: list[SingleReadNoise] = Field(min_length=2, description="the terms (none of them 'combined')")


ReadNoise = Annotated[
    Union[NoReadNoise, AdditiveReadNoise, ProportionalReadNoise, PCMReadNoise, CombinedReadNoise],
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------- drift
class NoDrift(_Strict):
    """Conductances stay as programmed."""

    kind: Literal["none"] = "none"


class LogNormalDrift(_Strict):
    """BayesFT memristor drift: ``G(t) = G_prog * exp(s(t) * n)``, n ~ N(0, 1) per device,
    ``s(t) = sigma + sigma_per_decade * log10((t + t0) / t0)``; the spread ``sigma`` is there
    from t = 0, right after programming."""

    kind: Literal["lognormal"] = "lognormal"
    sigma: float = Field(ge=0, le=5, description="std of the log-conductance change (dimensionless)")
    sigma_per_decade: float = Field(
        0.0, ge=0, le=5, description="growth of that std per decade of time after t0"
    )


class PowerLawDrift(_Strict):
    """``G(t) = G_prog * ((t + t0) / t0)^(-nu)``, nu = max(0, N(nu_mean, nu_std^2)) per device."""

    kind: Literal["power_law"] = "power_law"
    nu_mean: float = Field(ge=0, le=1, description="mean drift exponent (dimensionless)")
    nu_std: float = Field(0.0, ge=0, le=1, description="device-to-device std of the exponent")


class PCMDrift(_Strict):
    """IBM's PCM drift: power law with a conductance-dependent exponent per device,
    mu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1), sd = clip(-0.0125 ln g - 0.0059, 0.008, 0.045),
    nu = |mu + sd * n|, g = G_prog / g_max floored at 1e-7."""

    kind: Literal["pcm"] = "pcm"
    scale: float = Field(1.0, ge=0, le=10, description="multiplies nu (1 = published model)")


Drift = Annotated[
    Union[NoDrift, LogNormalDrift, PowerLawDrift, PCMDrift], Field(discriminator="kind")
]


class StuckAtFaults(_Strict):
    """Per device, independently: stuck at g_max with ``p_on``, at g_min with ``p_off``."""

    p_on: float = Field(0.0, ge=0, le=1, description="probability a device is stuck at g_max")
    p_off: float = Field(0.0, ge=0, le=1, description="probability a device is stuck at g_min")

    @model_validator(mode="after")
    def _total(self) -> StuckAtFaults:
        if self.p_on + self.p_off > 1:
            raise ValueError(f"p_on + p_off must be <= 1, got {self.p_on} + {self.p_off}")
        return self


class DeviceConfig(_Strict):
    """One resistive device: conductance range and its non-idealities."""

    g_min_us: float = Field(0.0, ge=0, description="lowest programmable conductance, uS")
    g_max_us: float = Field(25.0, gt=0, le=1e6, description="highest programmable conductance, uS")
    t0_s: float = Field(20.0, gt=0, description="time of the first read after programming, s")
    write_noise: WriteNoise = Field(default_factory=NoWriteNoise)
    read_noise: ReadNoise = Field(default_factory=NoReadNoise)
    drift: Drift = Field(default_factory=NoDrift)
    faults: StuckAtFaults = Field(default_factory=StuckAtFaults)

    @model_validator(mode="after")
    def _range(self) -> DeviceConfig:
        if self.g_min_us >= self.g_max_us:
            raise ValueError(
                f"g_min_us must be < g_max_us, got g_min_us={self.g_min_us}, g_max_us={self.g_max_us}"
            )
        return self


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
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "kind" not in value:
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
