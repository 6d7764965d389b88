"""What the benchmarks run: the tile cases and the networks (data only, no torch import)."""

from __future__ import annotations

_CONVERTERS_8BIT = {
    "tile.dac": {"bits": 8, "range": "dynamic"},
    "tile.adc": {"bits": 8, "range": "fixed", "bound": 10.0},
}

TILE_CASES: dict[str, dict] = {
    "ideal": {},
    "8-bit DAC/ADC": _CONVERTERS_8BIT,
    "8-bit + additive read noise (output_referred)": {
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "additive", "sigma": 0.5},
        "tile.out_noise": 0.04,
    },
    "8-bit + additive + wire resistance (1 ohm)": {
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "additive", "sigma": 0.5},
        "tile.out_noise": 0.04,
        "tile.wire_resistance_ohm": 1.0,
    },
    "8-bit + PCM read noise (output_referred)": {
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "pcm", "time": "per_read"},
        "tile.out_noise": 0.04,
    },
    "8-bit + PCM read noise (per_device)": {
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "pcm", "time": "per_read"},
        "tile.out_noise": 0.04,
        "tile.read_noise_path": "per_device",
    },
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
