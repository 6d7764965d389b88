"""The kinds of noise a robustness curve sweeps, each acting at its own place in the network:

- ``activation``: Gaussian noise after modules (Walking Noise / the hardening paper), a fresh draw
  at every forward; the level is its sigma;
- ``gate`` / ``gate:relative``: deep noise injection at every gate pre-activation of every time
  step of the LSTM / GRU / RNN layers; the level is an absolute sigma, or one relative to each
  pre-activation's own std;
- ``weight``: Noisy Machines' additive weight noise, ``eta * (max W_l - min W_l)`` per layer on
  every weight matrix, one draw per repeat (a noisy chip); the level is eta;
- ``bayesft``: BayesFT's ``theta * exp(lambda)``, lambda ~ N(0, sigma^2) on every parameter
  (not BatchNorm running statistics), one draw per repeat; the level is sigma;
- ``chip:PRESET`` or ``chip:FILE``: the network mapped onto that chip with its device write and
  read noise multiplied by the level (the ``scale`` of IBM-PCM-style models, the ``sigma`` of
  the others), one programming per repeat, at t = 0.

Each kind's ``applied(model)`` is a context manager giving ``at(level, seed) -> network``: the
network to evaluate, under that noise level, drawn from ``seed``. Leaving it restores the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from pydantic import ValidationError
from torch import nn

from ..config import PRESETS, ChipConfig
from ..errors import XbarsimError
from ..mapping.chip import map_model
from ..models.noise import NOISE_MODES, GateNoise, NoiseInjection
from ..models.training import model_device
from ..models.perturb import LogNormalPerturbation, WeightNoise

AtLevel = Callable[[float, int], nn.Module]  # (level, seed) -> the network to evaluate


@dataclass(frozen=True)
class ActivationNoise:
    """Gaussian noise after the modules in ``where`` ("all" or module names)."""

    mode: str = "additive"
    where: str | tuple[str, ...] = "all"
    level_name = "sigma"

    def __post_init__(self):
        if self.mode not in NOISE_MODES:
            raise XbarsimError(f"noise mode {self.mode!r}: choose from {', '.join(NOISE_MODES)}")

    def describe(self) -> str:
        where = "every module" if self.where == "all" else ", ".join(self.where)
        return f"activation noise after {where} ({self.mode})"

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[AtLevel]:
        try:
            injection = NoiseInjection(model, 0.0, self.where, self.mode)
        except ValueError as exc:
            raise XbarsimError(f"activation noise: {exc}") from None
        with injection:
            def at(level: float, seed: int) -> nn.Module:
                injection.set_sigma(level)
                torch.manual_seed(seed)
                return model

            yield at


@dataclass(frozen=True)
class GateNoiseKind:
    """Deep noise injection at the recurrent gates."""

    relative: bool = False
    level_name = "sigma"

    def describe(self) -> str:
        scale = "relative to its std" if self.relative else "absolute"
        return f"gate noise at every RNN gate pre-activation ({scale})"

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[AtLevel]:
        try:
            gates = GateNoise(model, 0.0, self.relative)
        except ValueError as exc:
            raise XbarsimError(f"gate noise does not apply: {exc}") from None
        with gates:
            def at(level: float, seed: int) -> nn.Module:
                gates.sigma = float(level)
                torch.manual_seed(seed)
                return model

            yield at


@dataclass(frozen=True)
class WeightNoiseKind:
    """Noisy Machines' weight noise, held fixed for one repeat."""

    level_name = "eta"

    def describe(self) -> str:
        return "weight noise (Noisy Machines), eta x each layer's weight range"

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[AtLevel]:
        try:
            noise = WeightNoise(model, 0.0, per_forward=False)
        except ValueError as exc:
            raise XbarsimError(f"weight noise does not apply: {exc}") from None
        with noise:
            def at(level: float, seed: int) -> nn.Module:
                noise.set_eta(level)
                torch.manual_seed(seed)
                noise.resample()
                return model

            yield at


@dataclass(frozen=True)
class BayesFTNoise:
    """BayesFT's log-normal perturbation of every parameter, held fixed for one repeat."""

    level_name = "sigma"

    def describe(self) -> str:
        return "BayesFT log-normal perturbation, theta * exp(N(0, sigma^2)) on every parameter"

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[AtLevel]:
        if not any(True for _ in model.parameters()):
            raise XbarsimError(f"BayesFT noise does not apply: {type(model).__name__} has no parameters")
        with LogNormalPerturbation(model, 0.0) as perturbation:
            def at(level: float, seed: int) -> nn.Module:
                torch.manual_seed(seed)
                perturbation.resample(level)
                return model

            yield at


def _scaled(fields: dict, factor: float) -> dict | None:
    """A noise model's fields with the one that sizes it multiplied by ``factor``: its ``scale`` (IBM PCM and the
    measured chips' laws), else its ``sigma``; every part of a combined model; None if nothing sizes it."""
    if fields["kind"] == "combined":
        parts = [_scaled(part, factor) for part in fields["parts"]]
        if all(part is None for part in parts):
            return None
        return {**fields, "parts": [new or old for new, old in zip(parts, fields["parts"])]}
    name = "scale" if "scale" in fields else ("sigma" if "sigma" in fields else None)
    return None if name is None else {**fields, name: fields[name] * factor}


def scaled_device_noise(cfg: ChipConfig, factor: float) -> ChipConfig:
    """``cfg`` with its device write and read noise multiplied by ``factor``: the ``scale`` of a
    model that has one (IBM PCM), else its ``sigma``; every part of a combined read noise. Drift, faults and
    converters stay as they are."""
    if not factor >= 0:
        raise XbarsimError(f"a chip noise scale must be >= 0, got {factor}")
    values = {}
    for part in ("write_noise", "read_noise"):
        scaled = _scaled(getattr(cfg.device, part).model_dump(), factor)
        if scaled is not None:
            values[f"device.{part}"] = scaled
    if not values:
        raise XbarsimError(f"chip {cfg.name!r} has no device write or read noise to scale")
    try:
        return cfg.with_values(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise XbarsimError(f"chip {cfg.name!r} at noise scale {factor:g}: {where}: {first['msg']}") from None


@dataclass(frozen=True)
class ChipNoise:
    """The network on a chip whose device noise is scaled by the level."""

    chip: str  # a preset name or a chip YAML/JSON file
    backend: str | None = None  # the tile backend (auto, numba, torch; None: the config's runtime.backend)
    level_name = "scale"

    def config(self) -> ChipConfig:
        return ChipConfig.preset(self.chip) if self.chip in PRESETS else ChipConfig.from_file(self.chip)

    def describe(self) -> str:
        return f"chip {self.chip!r} device noise (write and read), scaled"

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[AtLevel]:
        base = self.config()
        scaled_device_noise(base, 1.0)  # refuses a chip without device noise before any work
        mapped: dict[float, nn.Module] = {}

        def at(level: float, seed: int) -> nn.Module:
            if level not in mapped:
                mapped.clear()  # one mapped chip at a time: levels come in order
                mapped[level] = map_model(model, scaled_device_noise(base, level), seed=seed, device=model_device(model), backend=self.backend)
            chip = mapped[level]
            chip.program(seed)
            return chip

        yield at


NoiseKind = ActivationNoise | GateNoiseKind | WeightNoiseKind | BayesFTNoise | ChipNoise
NOISE_KIND_HELP = "activation, gate, gate:relative, weight, bayesft, chip:PRESET or chip:FILE"


def parse_noise_kind(text: str, mode: str | None = None, where: str | None = None, backend: str | None = None) -> NoiseKind:
    """A noise kind from its name (``NOISE_KIND_HELP``); ``mode`` and ``where`` belong to
    activation noise only; ``backend`` is the tile backend of chip noise (None: the chip config's)."""
    name, _, option = text.strip().partition(":")
    if name != "activation" and (mode is not None or where is not None):
        raise XbarsimError(f"--mode and --where apply to activation noise only, not to {text!r}")
    if name == "activation" and not option:
        places = "all" if where in (None, "all") else tuple(where.split(","))
        return ActivationNoise(mode or "additive", places)
    if name == "gate" and option in ("", "absolute", "relative"):
        return GateNoiseKind(relative=option == "relative")
    if name == "weight" and not option:
        return WeightNoiseKind()
    if name == "bayesft" and not option:
        return BayesFTNoise()
    if name == "chip" and option:
        return ChipNoise(option, backend)
    raise XbarsimError(f"unknown noise kind {text!r}; choose from {NOISE_KIND_HELP}")
