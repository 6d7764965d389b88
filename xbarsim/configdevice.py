"""The device part of the chip configuration: write noise, read noise, drift, faults (docs/physics.md §2-5).

Pydantic v2 models, strict like the rest of ``config`` (imported from there): each law is a tagged union on
``kind`` that accepts only its own fields. Conductances in uS, times in s.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    g_max_reference_us: float = Field(
        25.0, gt=0,
        description=(
            "the g_max the polynomial was fitted for, uS: the std is multiplied by g_max / g_max_reference_us, as "
            "aihwkit's PCMLikeNoiseModel does (prog_coeff_g_max_reference), so the spread keeps its share of the range"
        ),
    )  # fmt: skip


class PolynomialWriteNoise(_Strict):
    """std(uS) = scale * (g_max / g_max_reference_us) * |sum_i c_i x^i|, x = G_target / g_max (``variable:
    normalized``) or G_target in uS (``absolute``). ``fitted_on: cell``: the polynomial is the std of a unit
    cell's summed conductance (``mapping.devices_per_polarity`` = N devices, as HERMES's two-device fit; its g_max
    is then N g_max), so each of its N devices gets std / sqrt(N) and their sum has the fitted std; ``device``:
    each device has the std."""

    kind: Literal["polynomial"] = "polynomial"
    coefficients: list[float] = Field(min_length=1, max_length=8, description="c_0, c_1, ... in uS")
    variable: Literal["normalized", "absolute"] = Field(
        "normalized", description="normalized: x = G_target / g_max; absolute: x = G_target in uS"
    )
    g_max_reference_us: float | None = Field(
        None, gt=0, description="the g_max of the fit, uS (None: g_max, no rescaling)"
    )
    fitted_on: Literal["device", "cell"] = Field("device", description="what the fitted std describes (class doc)")
    scale: float = Field(1.0, ge=0, description="multiplies the std (1 = published model)")


WriteNoise = Annotated[
    Union[NoWriteNoise, AbsoluteWriteNoise, ProportionalWriteNoise, PCMWriteNoise, PolynomialWriteNoise],
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


class CurrentReadNoise(_Strict):
    """Noise whose variance follows the device's current: every read adds ``N(0, sigma^2 g_max |G|)`` (uS^2), a std of
    ``sigma`` of g_max at G = g_max. On an output it is aihwkit's WeightNoiseType.PCM_READ, ``w_noise sqrt(sum_j |w_ij|
    x_j^2)`` in units of the full-scale weight (its C++ ``applyOutputPCMReadNoise``), with w_noise = sigma."""

    kind: Literal["current"] = "current"
    sigma: float = Field(ge=0, le=10, description="std at G = g_max, as a fraction of g_max (aihwkit's w_noise)")
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
    time: ReadTime = Field("per_epoch", description=_READ_TIME_DESCRIPTION + "; 1/f noise: per_epoch by default")


HermesFit = Literal["one_device", "two_devices"]
_HERMES_FIT = (
    "one_device: the fit of a one-device unit cell, applied to each device on its own; two_devices: the fit of a "
    "two-device cell (measured on the cell's summed conductance), applied to each unit cell's sum, so that its devices "
    "share one draw, as aihwkit's HermesNoiseModel(num_devices=2) treats a cell 'as if the two devices host the same "
    "conductance'"
)


class HermesReadNoise(_Strict):
    """HERMES PCM 1/f read noise (aihwkit's HermesNoiseModel): std = scale * |G(t)| * Q(g) *
    sqrt(ln((t + t0 + t_read) / (2 t_read))), Q piecewise in g = |G_prog| / g_max (one- or two-device fit; the
    two-device fit takes G(t), G_prog and g_max of the whole unit cell: one deviation per cell)."""

    kind: Literal["hermes"] = "hermes"
    fit: HermesFit = Field("one_device", description=_HERMES_FIT)
    t_read_s: float = Field(512e-9, gt=0, description="duration of one read, s")
    scale: float = Field(1.0, ge=0, description="multiplies the std (1 = published model)")
    time: ReadTime = Field("per_epoch", description=_READ_TIME_DESCRIPTION + "; 1/f noise: per_epoch by default")

    @property
    def fitted_on_cell(self) -> bool:
        """Whether the law describes a unit cell's summed conductance (one draw per cell)."""
        return self.fit == "two_devices"


class LogConductanceReadNoise(_Strict):
    """IBM CMO/HfOx ReRAM read noise (aihwkit's ReRamCMONoiseModel): std (uS) = scale * k * |log10(G(t))| *
    sqrt(max(ln((t + t_read) / (2 t_read)), 0)), t since programming, G(t) in uS."""

    kind: Literal["log_conductance"] = "log_conductance"
    k: float = Field(0.0277316483, ge=0, description="K of the fit, uS per decade of G")
    t_read_s: float = Field(1e-6, gt=0, description="duration of one read, s")
    scale: float = Field(1.0, ge=0, description="multiplies the std (1 = published model)")
    time: ReadTime = Field("per_epoch", description=_READ_TIME_DESCRIPTION + "; 1/f noise: per_epoch by default")


SingleReadNoise = Annotated[
    Union[NoReadNoise, AdditiveReadNoise, ProportionalReadNoise, CurrentReadNoise, PCMReadNoise, HermesReadNoise,
          LogConductanceReadNoise],
    Field(discriminator="kind"),
]


class CombinedReadNoise(_Strict):
    """Several independent read-noise terms at once, each with its own time character, e.g. a
    per-epoch PCM 1/f part plus a per-read white part: the variances of the parts of one time
    character add."""

    kind: Literal["combined"] = "combined"
    parts: list[SingleReadNoise] = Field(min_length=2, description="the terms (none of them 'combined')")

    @model_validator(mode="after")
    def _one_epoch_draw(self) -> CombinedReadNoise:
        epoch = [part for part in self.parts if part.kind != "none" and part.time == "per_epoch"]
        if len(epoch) > 1 and any(getattr(part, "fitted_on_cell", False) for part in epoch):
            raise ValueError("a per_epoch part fitted on the unit cell (hermes, fit two_devices: one draw per cell) cannot be "
                             "combined with other per_epoch parts (one draw per device); make the others per_read")
        return self


ReadNoise = Annotated[
    Union[NoReadNoise, AdditiveReadNoise, ProportionalReadNoise, CurrentReadNoise, PCMReadNoise, HermesReadNoise,
          LogConductanceReadNoise, CombinedReadNoise],
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
    nu = |mu + sd * n|, g = G_target / g_max (or G_prog / g_max, ``exponent_from``) floored at 1e-7."""

    kind: Literal["pcm"] = "pcm"
    scale: float = Field(1.0, ge=0, le=10, description="multiplies nu (1 = published model)")
    exponent_from: Literal["target", "programmed"] = Field(
        "target",
        description=(
            "the conductance nu's statistics are taken at: target (the level the statistics were measured per, "
            "as aihwkit's generate_drift_coefficients(g_target)) or programmed (G_prog: xbarsim before 0.3, kept "
            "for the chip files it wrote)"
        ),
    )


class HermesDrift(_Strict):
    """HERMES PCM drift (aihwkit's HermesNoiseModel): ``G(t) = G_prog * ((t + t0) / t0)^(-nu)``,
    nu = scale * |mu(g) + sd(g) * n|, mu and sd piecewise in g = G_target / g_max (floored at 1e-7); with the
    two-device fit every device of a unit cell drifts with its cell's one exponent."""

    kind: Literal["hermes"] = "hermes"
    fit: HermesFit = Field("one_device", description=_HERMES_FIT)
    scale: float = Field(1.0, ge=0, le=10, description="multiplies nu (1 = published model)")

    @property
    def fitted_on_cell(self) -> bool:
        """Whether the law describes a unit cell's summed conductance (one exponent per cell)."""
        return self.fit == "two_devices"


class RelaxationDrift(_Strict):
    """RRAM conductance relaxation fitted as the spread around the target at published times (NeuRRAM, aihwkit's
    ReRamWan2022NoiseModel): ``G(t) = max(0, G_prog + r(t) * n)``, n ~ N(0, 1) per device, s(t) = scale *
    (g_max / g_max_reference_us) * |poly_t(G_target / g_max)| interpolated linearly in log10 t between the published
    times (held at the ends). ``starts_from: first_fit``: ``r(t)^2 = max(s(t)^2 - s(t_1)^2, 0)``, the variance s has
    grown since the first published time t_1, so programming with the spread at t_1 (one shot) gives s(t) at every
    published time. ``programmed``: ``r(t)^2 = max(s(t)^2 - e^2, 0)`` with e = G_prog - G_target, the device's own
    programming error, which the fitted deviation from the target already holds: the spread around the targets is
    s(t) whatever the programming left (a verify loop's residual), exactly where |e| <= s(t). One normal per device,
    so drifting to any t follows one trajectory."""

    kind: Literal["relaxation"] = "relaxation"
    times_s: list[float] = Field(min_length=1, max_length=16, description="the published times, s, increasing, > 0")
    coefficients: list[list[float]] = Field(description="per time: c_0, c_1, ... of the spread in uS, x = G_target / g_max")
    g_max_reference_us: float | None = Field(None, gt=0, description="the g_max of the fit, uS (None: g_max)")
    scale: float = Field(1.0, ge=0, le=10, description="multiplies the spread (1 = published model)")
    starts_from: Literal["first_fit", "programmed"] = Field(
        "first_fit", description="what the fitted spread grows from (class doc): the fit at t_1, or each device's programming error"
    )

    @model_validator(mode="after")
    def _times(self) -> RelaxationDrift:
        if len(self.coefficients) != len(self.times_s) or any(len(c) == 0 for c in self.coefficients):
            raise ValueError("coefficients needs one non-empty polynomial per published time")
        if any(t <= 0 for t in self.times_s) or any(b <= a for a, b in zip(self.times_s, self.times_s[1:])):
            raise ValueError(f"times_s must be > 0 and increasing, got {self.times_s}")
        return self


class LogTimeDrift(_Strict):
    """IBM CMO/HfOx ReRAM conductance decay (aihwkit's ReRamCMONoiseModel), independent of the level:
    ``G(t) = clip(G_prog + scale * (mean_per_ln_s * L + (std_per_ln_s * L + std_us) * n), g_min, g_max)``,
    L = max(ln(t / 1 s), 0), for t > 0 (t = 0: G_prog)."""

    kind: Literal["log_time"] = "log_time"
    mean_per_ln_s: float = Field(-0.08900206, description="mean shift per e-fold of time, uS")
    std_per_ln_s: float = Field(0.04201137, description="growth of the spread per e-fold of time, uS")
    std_us: float = Field(0.41183342, ge=0, description="spread at 1 s, uS")
    scale: float = Field(1.0, ge=0, le=10, description="multiplies the shift and the spread (1 = published model)")


Drift = Annotated[
    Union[NoDrift, LogNormalDrift, PowerLawDrift, PCMDrift, HermesDrift, RelaxationDrift, LogTimeDrift],
    Field(discriminator="kind"),
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
