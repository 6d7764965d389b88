"""What a sweep does at one (point, repeat): program a chip, age it, inject noise, measure."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ChipConfig
from ..errors import XbarsimError
from ..mapping.chip import AnalogModel, map_model
from ..models import data as datasets
from ..models import zoo
from ..models.checkpoint import load_network
from ..models.noise import NoiseInjection
from ..models.training import TrainConfig, accuracy, train
from .spec import DRIFT_AXIS, NOISE_AXIS, SPECIAL_AXES, SweepSpec


@dataclass
class Payload:
    """Everything a worker needs, shipped to it once: the trained network, the test data, the
    base chip config."""

    network: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    base_cfg_json: str


@dataclass
class Inputs:
    """What a spec names, loaded and checked: the data set and the network (untrained if from the zoo)."""

    split: datasets.DataSplit
    network: nn.Module
    train: TrainConfig | None  # the recipe, for a zoo model; None for a checkpoint


def load_inputs(spec: SweepSpec) -> Inputs:
    """Load the spec's data set and network and run the network on two test samples, so that a spec
    that cannot run is refused (naming the field) before any file is made. Trains nothing yet."""
    model = spec.model
    try:
        split = datasets.load(spec.data, seed=spec.seed)
    except (ValueError, OSError) as exc:
        raise XbarsimError(f"sweep {spec.name!r}: data: {exc}") from None
    try:
        if model.checkpoint is not None:
            network, recipe = load_network(model.checkpoint, model.zoo, model.kwargs or None), None
        else:
            torch.manual_seed(spec.seed)
            network = zoo.build(model.zoo, **model.kwargs)
            recipe = TrainConfig(**{"seed": spec.seed, **model.train})
    except (ValueError, OSError, TypeError) as exc:
        raise XbarsimError(f"sweep {spec.name!r}: model: {exc}") from None
    try:
        with torch.no_grad():
            network.eval()(split.x_test[:2])
    except Exception as exc:  # noqa: BLE001 - whatever the network raises, the spec cannot run
        raise XbarsimError(f"sweep {spec.name!r}: the model does not run on data {spec.data!r}: {type(exc).__name__}: {exc}") from None
    return Inputs(split, network, recipe)


def build_payload(spec: SweepSpec, inputs: Inputs, progress: bool = False) -> Payload:
    """The payload of ``inputs``, after training the network (seeded) if the spec gives a zoo recipe."""
    if inputs.train is not None:
        train(inputs.network, inputs.split, inputs.train, progress=progress)
    n = spec.test_samples or len(inputs.split.y_test)
    return Payload(inputs.network.eval(), inputs.split.x_test[:n], inputs.split.y_test[:n], spec.chip_config().to_json())


_last_chip: tuple[Payload, str, AnalogModel] | None = None  # per process: the payload, config and chip last mapped


def _chip(payload: Payload, cfg: ChipConfig, seed: int) -> AnalogModel:
    """The payload's network mapped onto ``cfg``, reused while both stay the same (the payload is held,
    so an identity check cannot match another sweep's network)."""
    global _last_chip
    key = cfg.to_json()
    if _last_chip is None or _last_chip[0] is not payload or _last_chip[1] != key:
        _last_chip = (payload, key, map_model(payload.network, cfg, seed=seed))
    return _last_chip[2]


def evaluate(payload: Payload, point: dict, seed: int) -> dict[str, float]:
    """Accuracy of the network on a chip of the point's config, programmed with ``seed``, at the
    point's drift time, with the point's activation noise (noise drawn from ``seed`` too)."""
    base = ChipConfig.model_validate_json(payload.base_cfg_json)
    chip = _chip(payload, base.with_values({k: v for k, v in point.items() if k not in SPECIAL_AXES}), seed)
    chip.program(seed)
    if point.get(DRIFT_AXIS, 0):
        chip.drift(float(point[DRIFT_AXIS]))
    sigma = float(point.get(NOISE_AXIS, 0.0))
    torch.manual_seed(seed)
    with NoiseInjection(chip.network, sigma) if sigma > 0 else contextlib.nullcontext():
        return {"accuracy": accuracy(chip, payload.x, payload.y)}
