"""What the benchmarks run: the tile cases and the networks (data only, no torch import)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_CONVERTERS_8BIT = {
    "tile.dac": {"bits": 8, "range": "dynamic"},
    "tile.adc": {"bits": 8, "range": "fixed", "bound": 10.0},
}


@dataclass(frozen=True)
class TileCase:
    """A tile benchmark case: ``values`` over ``preset``, on weights and inputs of kind ``data``:
    "scaled" W ~ N(0, 1 / size), x ~ N(0, 1); "aihwkit" W ~ N(0, 1), x ~ U(-1, 1) (the
    comparison with aihwkit's tile: its converters saturate there and bound management re-reads)."""

    values: dict = field(default_factory=dict)
    preset: str = "ideal"
    data: str = "scaled"

    def workload(self, size: int, batches: list[int]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Seeded float32 weights (size, size) and inputs {batch: (batch, size)} of this case's kind."""
        rng = np.random.default_rng(0)
        if self.data == "aihwkit":
            weights = rng.standard_normal((size, size)).astype(np.float32)
            return weights, {b: rng.uniform(-1, 1, (b, size)).astype(np.float32) for b in batches}
        weights = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
        return weights, {b: rng.standard_normal((b, size)).astype(np.float32) for b in batches}


TILE_CASES: dict[str, TileCase] = {
    "ideal": TileCase(),
    "8-bit DAC/ADC": TileCase(_CONVERTERS_8BIT),
    "8-bit + additive read noise (output_referred)": TileCase({
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "additive", "sigma": 0.5},
        "tile.out_noise": 0.04,
    }),
    "8-bit + additive + wire resistance (1 ohm)": TileCase({
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "additive", "sigma": 0.5},
        "tile.out_noise": 0.04,
        "tile.wire_resistance_ohm": 1.0,
    }),
    "8-bit + PCM read noise (output_referred)": TileCase({
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "pcm", "time": "per_read"},
        "tile.out_noise": 0.04,
    }),
    "8-bit + PCM read noise (per_device)": TileCase({
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "pcm", "time": "per_read"},
        "tile.out_noise": 0.04,
        "tile.read_noise_path": "per_device",
    }),
    "aihwkit preset, bound management, W~N(0,1) x~U(-1,1)": TileCase(preset="aihwkit", data="aihwkit"),
}

LSTM_STEPS = 50
LSTM_FEATURES = 64
GPT_CHARACTERS = 128  # characters per sequence of chargpt

DEFAULT_MODELS = ("lenet5", "vgg11", "resnet18", "lstm", "vit", "chargpt")

# name -> (zoo model, constructor arguments); CNNs and the ViT read CIFAR-shaped images
MODELS: dict[str, tuple[str, dict]] = {
    "lenet5": ("lenet5", {"in_channels": 3, "num_classes": 10, "image_size": 32}),
    "vgg11": ("vgg11", {"in_channels": 3, "num_classes": 10, "image_size": 32}),
    "resnet18": ("resnet18", {"in_channels": 3, "num_classes": 10}),
    "lstm": ("lstm", {"input_size": LSTM_FEATURES, "hidden_size": 256, "num_layers": 2, "num_classes": 10}),
    "vit": ("vit", {"in_channels": 3, "num_classes": 10, "image_size": 32, "patch_size": 4, "dim": 128, "depth": 4, "heads": 4,
                    "mlp_dim": 256}),
    "chargpt": ("chargpt", {"vocab_size": 97, "context": GPT_CHARACTERS, "dim": 128, "depth": 4, "heads": 4, "mlp_dim": 512}),
}


def describe(model: str) -> str:
    """The input a model is timed on, in words."""
    if model == "lstm":
        return f"LSTM 2x256, {LSTM_STEPS} steps of {LSTM_FEATURES} features"
    if model == "chargpt":
        return f"chargpt 4 x 128, sequences of {GPT_CHARACTERS} characters"
    if model == "vit":
        return "ViT 4 x 128, 3x32x32 images in 64 patches"
    return "3x32x32 images"


def model_input(model: str, batch: int):
    """Random input of the right shape (the values do not change the work): a torch tensor."""
    import torch

    generator = torch.Generator().manual_seed(0)
    if model == "chargpt":
        return torch.randint(0, 97, (batch, GPT_CHARACTERS), generator=generator)
    shape = (batch, LSTM_STEPS, LSTM_FEATURES) if model == "lstm" else (batch, 3, 32, 32)
    return torch.rand(*shape, generator=generator)
