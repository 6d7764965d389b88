"""Denoising blocks: small trainable residual blocks after chosen analog layers of a frozen
mapped model, trained on the noisy chip, and the greedy search for where they help.

The search holds out a validation split of the training data. Blocks train on the rest; a
candidate block (after the next most sensitive layer, sensitivity measured on validation) is
kept only when it raises the validation accuracy, and the search stops when the target is met
on validation (by default the validation accuracy of the chip with every layer exact, less 2
points: every decision is made on training data), ``max_blocks`` are kept, or every candidate
has been tried. The test split is only measured, before and after, at the read counters the chip came with; they are left as they
were, so ``xbarsim eval`` of the saved chip reports exactly the "after" accuracy.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..mapping.blocks import DenoisingBlock, apply_block, block_key
from ..mapping.chip import AnalogModel
from ..mapping.layers import AnalogConv, AnalogLinear, AnalogRecurrent
from ..models.data import DataSplit, hold_out
from .chipstate import accuracy_from, read_counters, restore_read_counters


@contextlib.contextmanager
def only_noisy(model: AnalogModel, names: list[str]):
    """Inside: the layers not in ``names`` compute exactly with their intended weights."""
    others = [m.tiles for name, layer in model.chip.layers.items() if name not in names for m in layer.matrices()]
    for tiles in others:
        tiles.ideal = True
    try:
        yield
    finally:
        for tiles in others:
            tiles.ideal = False


def exact_accuracy(model: AnalogModel, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy with every layer exact (the float network, with the chip's digital blocks)."""
    with only_noisy(model, []):
        return accuracy_from(model, read_counters(model), x, y)


def layer_sensitivity(model: AnalogModel, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy drop per analog layer when only that layer runs on the chip, largest first
    (every layer measured at the same read counters, which are left as they were)."""
    counters = read_counters(model)
    clean = exact_accuracy(model, x, y)
    drops = {}
    for name in model.chip.layers:
        with only_noisy(model, [name]):
            drops[name] = clean - accuracy_from(model, counters, x, y)
    return dict(sorted(drops.items(), key=lambda item: -item[1]))


def block_for(model: AnalogModel, layer_name: str, ratio: float = 0.25, seed: int = 0) -> DenoisingBlock:
    """A block sized for the layer's output channels (hidden = ratio x channels, at least 4),
    its first layer initialized from ``seed`` (the second starts at zero: the identity)."""
    layer = model.chip.layers[layer_name]
    if isinstance(layer, AnalogConv):
        channels, channel_dim = layer.out_channels, 1
    elif isinstance(layer, AnalogLinear):
        channels, channel_dim = layer.out_features, -1
    elif isinstance(layer, AnalogRecurrent):
        channels, channel_dim = layer.hidden_size * (2 if layer.bidirectional else 1), -1
    else:
        raise ValueError(f"no denoising block for layer {layer_name!r} of type {type(layer).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DenoisingBlock(channels, max(4, int(round(ratio * channels))), channel_dim)


def train_blocks(model: AnalogModel, data: DataSplit, epochs: int = 5, lr: float = 3e-3, batch_size: int = 64,
                 seed: int = 0, progress: bool = True, blocks: Iterable[nn.Module] | None = None) -> list[float]:  # fmt: skip
    """Train denoising blocks (default: the model's attached ones) on ``data``'s train split on
    the chip (fresh read noise every step); everything else stays frozen. Returns the mean loss
    per epoch."""
    params = [p for block in (model.blocks.values() if blocks is None else blocks) for p in block.parameters()]
    if not params:
        raise ValueError("the model has no denoising blocks to train")
    frozen = [p for p in model.network.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    try:
        model.train()
        for _ in tqdm(range(epochs), desc="denoising blocks", unit="epoch", disable=not progress, file=sys.stderr):
            order = torch.randperm(len(data.y_train), generator=generator)
            total = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            losses.append(total / len(order))
    finally:
        model.eval()
        for p in frozen:
            p.requires_grad_(True)
    return losses


@contextlib.contextmanager
def trial_block(model: AnalogModel, layer_name: str, block: DenoisingBlock) -> Iterator[None]:
    """Inside: ``block`` runs on the output of ``layer_name`` without being attached to the model."""
    handle = model.network.get_submodule(layer_name).register_forward_hook(apply_block(block))
    try:
        yield
    finally:
        handle.remove()


@dataclass(frozen=True)
class Trial:
    """One candidate block: the layer it followed, its size, the validation accuracy with it."""

    layer: str
    parameters: int
    validation_accuracy: float
    kept: bool


@dataclass
class DenoiseResult:
    """Accuracies in [0, 1]: validation drives the search, test is only reported."""

    baseline_accuracy: float  # test, before
    validation_before: float
    sensitivity: dict[str, float]  # validation accuracy drop with only that layer on the chip
    target: float
    fit_samples: int = 0
    validation_samples: int = 0
    trials: list[Trial] = field(default_factory=list)
    final_accuracy: float = 0.0  # test, after
    block_parameters: int = 0
    model_parameters: int = 0
    exact_validation: float = 0.0  # validation accuracy with every layer exact (the float network)
    target_from_validation: bool = False  # the target is exact_validation less a margin, not the user's

    @property
    def steps(self) -> list[tuple[str, float]]:
        """The blocks kept: (layer, validation accuracy after adding it)."""
        return [(t.layer, t.validation_accuracy) for t in self.trials if t.kept]

    @property
    def validation_after(self) -> float:
        return self.steps[-1][1] if self.steps else self.validation_before

    @property
    def overhead_percent(self) -> float:
        return 100.0 * self.block_parameters / max(self.model_parameters, 1)


DEFAULT_MARGIN = 0.02  # the default target: this much below the validation accuracy with every layer exact


def model_parameters(model: AnalogModel) -> int:
    """Weights of the network: analog matrices (bias rows included) plus digital parameters."""
    analog = sum(int(m.tiles.grid.n_in * m.tiles.grid.n_out) for m in model.chip.matrices())
    return analog + sum(p.numel() for p in model.network.parameters())


def _block_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def denoise(model: AnalogModel, data: DataSplit, target: float | None = None, max_blocks: int | None = None, epochs: int = 5,
            ratio: float = 0.25, seed: int = 0, progress: bool = True, validation: float = 0.2,
            margin: float = DEFAULT_MARGIN) -> DenoiseResult:  # fmt: skip
    """Greedy search (see the module doc): try a block after each analog layer, most sensitive
    first, keep it when it raises the validation accuracy (a ``validation`` fraction of the train
    split, drawn with ``seed``), until the validation accuracy reaches ``target`` (default: the
    validation accuracy with every layer exact, less ``margin``), ``max_blocks`` blocks are kept,
    or the candidates run out. Layers that already have a block are skipped."""
    counters = read_counters(model)
    split = hold_out(data, validation, seed)
    x_val, y_val = split.x_test, split.y_test
    exact = exact_accuracy(model, x_val, y_val)
    result = DenoiseResult(
        accuracy_from(model, counters, data.x_test, data.y_test), accuracy_from(model, counters, x_val, y_val),
        layer_sensitivity(model, x_val, y_val), exact - margin if target is None else target, len(split.y_train), len(y_val),
        model_parameters=model_parameters(model), exact_validation=exact, target_from_validation=target is None,
    )  # fmt: skip
    best = result.validation_before
    candidates = [name for name in result.sensitivity if block_key(name) not in model.blocks]
    for index, name in enumerate(candidates):
        if best >= result.target or (max_blocks is not None and len(result.steps) >= max_blocks):
            break
        block = block_for(model, name, ratio, _block_seed(seed, index))
        attached = {key: value.clone() for key, value in model.blocks.state_dict().items()}
        with trial_block(model, name, block):
            train_blocks(model, split, epochs, seed=seed, progress=progress, blocks=[*model.blocks.values(), block])
            score = accuracy_from(model, counters, x_val, y_val)
        kept = score > best
        result.trials.append(Trial(name, sum(p.numel() for p in block.parameters()), score, kept))
        if kept:
            model.attach_block(name, block)
            best = score
        else:
            model.blocks.load_state_dict(attached)  # the attached blocks trained along: undo that
    result.final_accuracy = accuracy_from(model, counters, data.x_test, data.y_test)
    restore_read_counters(model, counters)
    result.block_parameters = sum(p.numel() for p in model.blocks.parameters())
    return result


def format_result(result: DenoiseResult, test_name: str) -> str:
    """The lines ``xbarsim denoise`` prints: the search, step by step, then test before and after."""
    lines = [f"blocks train on {result.fit_samples} train samples and are kept only if they raise the accuracy on "
             f"{result.validation_samples} held-out validation samples; the {test_name} split is only measured",
             "sensitivity (validation accuracy drop with only that layer on the chip):"]  # fmt: skip
    lines += [f"  {name:<28} {100 * drop:6.2f}%" for name, drop in result.sensitivity.items()]
    how = (f"the validation accuracy with every layer exact, {100 * result.exact_validation:.2f}%, less "
           f"{100 * (result.exact_validation - result.target):.2g} points") if result.target_from_validation else "--target"
    lines.append(f"validation accuracy on the chip: {100 * result.validation_before:.2f}% (target {100 * result.target:.2f}%: {how})")
    best = result.validation_before
    for trial in result.trials:
        verdict = "kept" if trial.kept else "dropped: no gain"
        lines.append(f"  block after {trial.layer:<24} ({trial.parameters:,} parameters): validation "
                     f"{100 * best:.2f}% -> {100 * trial.validation_accuracy:.2f}%, {verdict}")  # fmt: skip
        if trial.kept:
            best = trial.validation_accuracy
    if result.validation_before >= result.target:
        lines.append("target already met on validation: no block tried")
    else:
        reached = "reached" if result.validation_after >= result.target else "not reached"
        lines.append(f"target {reached} on validation after {len(result.trials)} candidate(s)")
    lines.append(f"{len(result.steps)} block(s) kept: {result.block_parameters:,} block parameters = "
                 f"{result.overhead_percent:.2f}% of the network's {result.model_parameters:,}")  # fmt: skip
    lines.append(f"{test_name} accuracy: {100 * result.baseline_accuracy:.2f}% before -> {100 * result.final_accuracy:.2f}% after")
    return "\n".join(lines)
