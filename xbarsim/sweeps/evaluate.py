"""What a sweep does at one (point, repeat): program a chip, age it, inject noise, measure; or, for
a kind of noise that acts on torch layers (gate, weight, bayesft), apply it to the trained float
network and measure that."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ChipConfig
from ..errors import XbarsimError
from ..mapping.chip import AnalogModel, map_model
from ..mapping.cost import cost_since, counter_snapshot
from ..models import data as datasets
from ..models import netspec
from ..models.checkpoint import checkpoint_content, load_network, network_from_content
from ..models.noise import NoiseInjection
from ..models.training import TrainConfig, accuracy, language_scores, model_device, train
from .noise_kinds import parse_noise_kind
from .spec import CHIP_NOISE, DRIFT_AXIS, NOISE_AXES, SPECIAL_AXES, SweepSpec


@dataclass
class Payload:
    """Everything a worker needs, shipped to it once: the trained network, the test data, the
    base chip config and the spec's kind of noise."""

    network: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    base_cfg_json: str
    noise: str = CHIP_NOISE
    cost: bool = False  # also measure the energy and latency per inference (metrics: [..., cost])
    bpc: bool = False  # a language model: also its bits per character (metrics: [..., bpc])
    device: str = "cpu"  # where the chips and the network run (a worker of a GPU sweep gets its own GPU: ``on_device``)

    def on_device(self, device: str | None = None) -> Payload:
        """Run on ``device`` from now on (default: ``device`` as it is): the network moves there, once."""
        self.device = self.device if device is None else device
        self.network.to(self.device)
        return self

    def __getstate__(self) -> dict:
        """Pickled for worker processes: a zoo network travels as its checkpoint content, because
        torch cannot pickle the parametrized weights of a QAT-trained network; any network travels
        from the CPU (a worker moves it to its own device)."""
        state = dict(self.__dict__)
        if getattr(type(self.network), "zoo_name", None) is not None:
            state["network"] = checkpoint_content(self.network)
        elif model_device(self.network).type != "cpu":
            state["network"] = copy.deepcopy(self.network).cpu()
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state["network"], dict):
            state["network"] = network_from_content(state["network"])
        self.__dict__.update(state)


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
            network = netspec.build({"zoo": model.zoo, "kwargs": model.kwargs})
            recipe = model.recipe(spec.seed)
    except (ValueError, OSError, TypeError) as exc:
        raise XbarsimError(f"sweep {spec.name!r}: model: {exc}") from None
    try:
        with torch.no_grad():
            network.eval()(split.x_test[:2])
    except Exception as exc:  # noqa: BLE001 - whatever the network raises, the spec cannot run
        raise XbarsimError(f"sweep {spec.name!r}: the model does not run on data {spec.data!r}: {type(exc).__name__}: {exc}") from None
    _check_noise_applies(spec, network, split.x_test[:2])
    return Inputs(split, network, recipe)


def sweep_work(spec: SweepSpec, inputs: Inputs) -> tuple[int, str]:
    """Network evaluations the whole sweep asks for, and how they add up: every row runs its test
    samples; a zoo model's recipe trains first (3 evaluations per sample and epoch: forward, backward)."""
    tests = min(spec.test_samples or len(inputs.split.y_test), len(inputs.split.y_test))
    rows = spec.row_count()
    evaluations, parts = rows * tests, f"{rows:,} rows x {tests:,} test samples"
    if inputs.train is not None:
        samples = len(inputs.split.y_train)
        evaluations += 3 * inputs.train.epochs * samples
        parts += f" + 3 x {inputs.train.epochs:,} training epochs x {samples:,} samples"
    return evaluations, parts


def _check_noise_applies(spec: SweepSpec, network: nn.Module, x: torch.Tensor) -> None:
    """Run ``network`` on ``x`` under the spec's float-network noise (level 0), so that a kind that
    does not apply to the model (gate noise without a recurrent layer) is refused before any file
    is made. The network and torch's random state are left as they were."""
    if spec.noise == CHIP_NOISE:
        return  # activation noise applies to every network
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), spec.noise_kind().applied(network) as at:
            at(0.0, spec.seed)(x)
    except XbarsimError as exc:
        raise XbarsimError(f"sweep {spec.name!r}: noise {spec.noise!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the network raises under this noise, the spec cannot run
        raise XbarsimError(f"sweep {spec.name!r}: the model does not run under noise {spec.noise!r}: {type(exc).__name__}: {exc}") from None


def build_payload(spec: SweepSpec, inputs: Inputs, progress: bool = False, device: str = "cpu", backend: str | None = None) -> Payload:
    """The payload of ``inputs``, after training the network (seeded, on ``device``) if the spec gives a zoo
    recipe; its chips run on ``device`` with tile ``backend`` (None: the spec's chip config's runtime.backend)."""
    if inputs.train is not None:
        train(inputs.network, inputs.split, inputs.train, progress=progress, device=device)
    n = spec.test_samples or len(inputs.split.y_test)
    cfg = spec.chip_config() if backend is None else spec.chip_config().with_values({"runtime.backend": backend})
    return Payload(inputs.network.eval(), inputs.split.x_test[:n], inputs.split.y_test[:n], cfg.to_json(), spec.noise,
                   "cost" in spec.metrics, "bpc" in spec.metrics, device)


_last_chip: tuple[Payload, str, AnalogModel] | None = None  # per process: the payload, config and chip last mapped


def _chip(payload: Payload, cfg: ChipConfig, seed: int) -> AnalogModel:
    """The payload's network mapped onto ``cfg``, reused while both stay the same (the payload is held,
    so an identity check cannot match another sweep's network)."""
    global _last_chip
    key = cfg.to_json()
    if _last_chip is None or _last_chip[0] is not payload or _last_chip[1] != key:
        _last_chip = (payload, key, map_model(payload.network, cfg, seed=seed, device=payload.device))
    return _last_chip[2]


def evaluate(payload: Payload, point: dict, seed: int) -> dict[str, float]:
    """Accuracy of the network on a chip of the point's config, programmed with ``seed``, at the
    point's drift time, with the point's activation noise (noise drawn from ``seed`` too), and with
    ``payload.cost`` its energy (nJ) and latency (us) per inference (``mapping.cost``); or, for
    another kind of noise, of the float network under the point's noise level drawn from ``seed``."""
    level = float(next((point[axis] for axis in NOISE_AXES if axis in point), 0.0))
    if payload.noise != CHIP_NOISE:
        return _float_scores(payload, level, seed)
    base = ChipConfig.model_validate_json(payload.base_cfg_json)
    chip = _chip(payload, base.with_values({k: v for k, v in point.items() if k not in SPECIAL_AXES}), seed)
    chip.program(seed)
    if point.get(DRIFT_AXIS, 0):
        chip.drift(float(point[DRIFT_AXIS]))
    torch.manual_seed(seed)
    snapshot = counter_snapshot(chip.chip)
    with NoiseInjection(chip.network, level) if level > 0 else contextlib.nullcontext():
        metrics = _scores(chip, payload)
    if payload.cost:  # counted on the accuracy run itself: its vectors and bound-management re-reads
        cost = cost_since(chip.chip, snapshot, len(payload.x))
        metrics.update(energy_per_inference=cost.energy_pj * 1e-3, latency=cost.latency_ns * 1e-3)
    return metrics


def _scores(network: nn.Module, payload: Payload) -> dict[str, float]:
    """Accuracy, and with ``payload.bpc`` the bits per character too (one pass over the test data)."""
    if payload.bpc:
        return language_scores(network, payload.x, payload.y)
    return {"accuracy": accuracy(network, payload.x, payload.y)}


@torch.no_grad()
def _float_scores(payload: Payload, level: float, seed: int) -> dict[str, float]:
    """``_scores`` of the float network under ``level`` of the payload's noise kind, drawn from ``seed``
    (``noise_kinds``: the same network a robustness curve measures); the network is left as it was."""
    with parse_noise_kind(payload.noise).applied(payload.network) as at:
        return _scores(at(level, seed), payload)
