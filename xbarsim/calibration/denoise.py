"""Denoising blocks (DESIGN.md §4): small trainable residual blocks after chosen analog layers of
a frozen mapped model, trained on the noisy chip; a greedy search adds them after the most
sensitive layers (accuracy drop when only that layer runs on the chip) until a target accuracy
is met, and reports the parameter overhead."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..mapping.blocks import DenoisingBlock
from ..mapping.chip import AnalogModel
from ..mapping.layers import AnalogConv, AnalogLinear, AnalogRecurrent
from ..models.data import DataSplit
from ..models.training import accuracy


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


def layer_sensitivity(model: AnalogModel, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy drop per analog layer when only that layer runs on the chip, largest first."""
    with only_noisy(model, []):
        clean = accuracy(model, x, y)
    drops = {}
    for name in model.chip.layers:
        with only_noisy(model, [name]):
            drops[name] = clean - accuracy(model, x, y)
    return dict(sorted(drops.items(), key=lambda item: -item[1]))


def block_for(model: AnalogModel, layer_name: str, ratio: float = 0.25) -> DenoisingBlock:
    """A block sized for the layer's output channels (hidden = ratio x channels, at least 4)."""
    layer = model.chip.layers[layer_name]
    if isinstance(layer, AnalogConv):
        channels, channel_dim = layer.out_channels, 1
    elif isinstance(layer, AnalogLinear):
        channels, channel_dim = layer.out_features, -1
    elif isinstance(layer, AnalogRecurrent):
        channels, channel_dim = layer.hidden_size * (2 if layer.bidirectional else 1), -1
    else:
        raise ValueError(f"no denoising block for layer {layer_name!r} of type {type(layer).__name__}")
    return DenoisingBlock(channels, max(4, int(round(ratio * channels))), channel_dim)


def train_blocks(model: AnalogModel, data: DataSplit, epochs: int = 5, lr: float = 3e-3, batch_size: int = 64,
                 seed: int = 0, progress: bool = True) -> list[float]:  # fmt: skip
    """Train the model's denoising blocks on the chip (fresh read noise every step); everything
    else stays frozen. Returns the mean loss per epoch."""
    params = list(model.blocks.parameters())
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


@dataclass
class DenoiseResult:
    baseline_accuracy: float
    sensitivity: dict[str, float]
    steps: list[tuple[str, float]] = field(default_factory=list)  # (layer given a block, accuracy after)
    block_parameters: int = 0
    model_parameters: int = 0

    @property
    def final_accuracy(self) -> float:
        return self.steps[-1][1] if self.steps else self.baseline_accuracy

    @property
    def overhead_percent(self) -> float:
        return 100.0 * self.block_parameters / max(self.model_parameters, 1)


def model_parameters(model: AnalogModel) -> int:
    """Weights of the network: analog matrices (bias rows included) plus digital parameters."""
    analog = sum(int(m.tiles.grid.n_in * m.tiles.grid.n_out) for m in model.chip.matrices())
    return analog + sum(p.numel() for p in model.network.parameters())


def denoise(model: AnalogModel, data: DataSplit, target: float, max_blocks: int | None = None, epochs: int = 5,
            ratio: float = 0.25, seed: int = 0, progress: bool = True) -> DenoiseResult:  # fmt: skip
    """Greedy search: add a block after the next most sensitive layer, train all blocks on the
    chip, and stop when the test accuracy reaches ``target`` (or blocks run out)."""
    x, y = data.x_test, data.y_test
    result = DenoiseResult(accuracy(model, x, y), layer_sensitivity(model, x, y), model_parameters=model_parameters(model))
    candidates = list(result.sensitivity)[: max_blocks or None]
    for name in candidates:
        if result.final_accuracy >= target:
            break
        model.attach_block(name, block_for(model, name, ratio))
        train_blocks(model, data, epochs, seed=seed, progress=progress)
        result.steps.append((name, accuracy(model, x, y)))
    result.block_parameters = sum(p.numel() for p in model.blocks.parameters())
    return result
