"""The model zoo: MLP, LeNet-5, VGG-11, ResNet-18 (CIFAR variant), LSTM/GRU/RNN sequence classifiers,
LSTM/GRU character language models, and (``zoo_attention``) a vision transformer and a small GPT.

Input channels, image size and class count are arguments. Every model records its constructor
arguments in ``init_kwargs`` so a chip file can rebuild it by name (``build(name, **kwargs)``);
``build`` checks the arguments against the constructor's signature first (``check_kwargs``).
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import typing
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import XbarsimError

ZOO: dict[str, type[nn.Module]] = {}
MAX_SIZE = 2**62
"""The largest size or count a zoo argument may give (torch sizes are int64; the memory check refuses far less)."""


def _register(name: str):
    """Add a model class to ZOO and make its instances record their constructor arguments."""

    def wrap(cls):
        original = cls.__init__
        signature = inspect.signature(original)

        @functools.wraps(original)
        def __init__(self, *args, **kwargs):
            original(self, *args, **kwargs)
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            self.init_kwargs = {k: v for k, v in bound.arguments.items() if k != "self"}

        cls.__init__ = __init__
        cls.zoo_name = name
        ZOO[name] = cls
        return cls

    return wrap


def build(name: str, **kwargs: Any) -> nn.Module:
    """A zoo model by name (``mlp``, ``lenet5``, ``vgg11``, ``resnet18``, ``lstm``, ``gru``, ``rnn``, ``vit``,
    ``chargpt``, ``charlstm``, ``chargru``)."""
    checked = check_kwargs(name, kwargs)  # first: it names an unknown model
    return ZOO[name](**checked)


def check_kwargs(name: str, kwargs: Any) -> dict[str, Any]:
    """The arguments of zoo model ``name``, checked against its constructor's signature.

    Refuses an unknown model, unknown argument names and values of the wrong type (a bool is not
    an int, an int is a float, a list of ints is a ``tuple[int, ...]``). Returns them with lists
    made tuples. Raises XbarsimError naming the model and the argument.
    """
    if not isinstance(name, str) or name not in ZOO:
        raise XbarsimError(f"unknown zoo model {str(name)[:60]!r}; the zoo has {', '.join(sorted(ZOO))}")
    if not isinstance(kwargs, dict):
        raise XbarsimError(f"zoo model {name!r}: its arguments must be a mapping of names to values")
    parameters = inspect.signature(ZOO[name].__init__, eval_str=True).parameters
    accepted = [p for p in parameters if p != "self"]
    checked = {}
    for key, value in kwargs.items():
        if key not in accepted:
            raise XbarsimError(f"zoo model {name!r} has no argument {str(key)[:60]!r} (it takes {', '.join(accepted)})")
        checked[key] = _typed(value, parameters[key].annotation, f"zoo model {name!r}: argument {key}")
    return checked


def _typed(value: Any, annotation: Any, what: str) -> Any:
    """``value`` if it has type ``annotation`` (int: 1 to ``MAX_SIZE``, float, bool or tuple[int, ...]); else
    XbarsimError. Sizes that pass may still ask for too much memory: ``netspec.check_memory`` refuses those."""
    is_bool = isinstance(value, (bool, np.bool_))
    if annotation is bool and is_bool:
        return bool(value)
    if annotation is int and isinstance(value, numbers.Integral) and not is_bool:
        if not 1 <= value <= MAX_SIZE:  # every int of a zoo constructor is a size or a count
            raise XbarsimError(f"{what} must be an integer from 1 to 2**62 (got {str(value)[:40]})")
        return int(value)
    if annotation is float and isinstance(value, numbers.Real) and not is_bool and math.isfinite(value):
        return float(value)
    if typing.get_origin(annotation) is tuple and isinstance(value, (list, tuple)):
        (item, _) = typing.get_args(annotation)
        return tuple(_typed(v, item, what) for v in value)
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    kind = getattr(annotation, "__name__", str(annotation))
    raise XbarsimError(f"{what} must be of type {kind} (got {shown})")


def _flat_features(features: nn.Sequential, in_channels: int, image_size: int) -> int:
    """Values per image after ``features`` (square images), from the layers' shape rules. No
    forward pass: on the meta device (a chip load builds its network there) one imports torch's
    symbolic-shape machinery, ~3 s at a process's first load."""
    channels, size = in_channels, image_size
    for layer in features:
        if isinstance(layer, nn.Conv2d | nn.MaxPool2d):
            kernel, stride, padding, dilation = (
                v if isinstance(v, int) else v[0]
                for v in (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
            )
            size = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
            channels = layer.out_channels if isinstance(layer, nn.Conv2d) else channels
        elif not isinstance(layer, nn.ReLU | nn.BatchNorm2d):
            raise TypeError(f"_flat_features has no shape rule for {type(layer).__name__}")
    return channels * size * size


@_register("mlp")
class MLP(nn.Module):
    """Fully connected classifier on flattened inputs."""

    def __init__(
        self, in_features: int = 64, hidden: tuple[int, ...] = (256, 128), num_classes: int = 10, dropout: float = 0.0
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@_register("lenet5")
class LeNet5(nn.Module):
    """LeNet-5: conv(6, 5x5) - pool - conv(16, 5x5) - pool - 120 - 84 - classes, ReLU.
    The second conv is padded on images smaller than 16 pixels (e.g. 8x8 digits)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=0 if image_size >= 16 else 2), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        flat = _flat_features(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


@_register("vgg11")
class VGG11(nn.Module):
    """VGG-11 for small images: 8 conv layers (optional BatchNorm), pools while the map is > 1
    pixel, a 3-layer classifier with dropout. ``width`` scales every layer's channels."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, batch_norm: bool = True,
                 dropout: float = 0.5, width: float = 1.0):  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for item in _VGG11:
            if item == "M":
                if size > 1:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                continue
            out = max(1, int(item * width))
            layers.append(nn.Conv2d(channels, out, 3, padding=1, bias=not batch_norm))
            layers += [nn.BatchNorm2d(out), nn.ReLU()] if batch_norm else [nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        flat = _flat_features(self.features, in_channels, image_size)
        hidden = max(1, int(512 * width))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@_register("resnet18")
class ResNet18(nn.Module):
    """ResNet-18, CIFAR variant: 3x3 stem, no max-pool, stages of 2 BasicBlocks at widths
    (1, 2, 4, 8) x ``width``, global average pool, linear classifier."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, planes = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            out = width * mult
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(planes, out, stride), BasicBlock(out, out, 1)))
            planes = out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(self.pool(out), 1))


class _RecurrentClassifier(nn.Module):
    """Reads a sequence (batch, steps, features) and classifies from the last step's output."""

    cell: type[nn.RNNBase]

    def __init__(self, input_size: int = 8, hidden_size: int = 64, num_layers: int = 2, num_classes: int = 10,
                 bidirectional: bool = False):  # fmt: skip
        super().__init__()
        self.rnn = self.cell(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # images (batch, 1, rows, cols) are read row by row
            x = x.flatten(1, 2)
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


@_register("lstm")
class LSTMClassifier(_RecurrentClassifier):
    cell = nn.LSTM


@_register("gru")
class GRUClassifier(_RecurrentClassifier):
    cell = nn.GRU


@_register("rnn")
class RNNClassifier(_RecurrentClassifier):
    """A vanilla (Elman, tanh) recurrent classifier."""

    cell = nn.RNN


class _RecurrentLM(nn.Module):
    """A character language model: an embedding of the characters, the recurrent layers, and a linear head
    over the vocabulary at every step: (batch, steps) indices -> (batch, steps, vocab) logits."""

    cell: type[nn.RNNBase]

    def __init__(self, vocab_size: int = 97, embed_dim: int = 32, hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = self.cell(embed_dim, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(idx))
        return self.head(out)


@_register("charlstm")
class CharLSTM(_RecurrentLM):
    cell = nn.LSTM


@_register("chargru")
class CharGRU(_RecurrentLM):
    cell = nn.GRU


from . import zoo_attention  # noqa: E402, F401 - registers vit and chargpt
