"""Digital denoising blocks attached after analog layers (trained in calibration/denoise.py).

A block is a residual bottleneck over the channels of a layer's output,
``x + W2 relu(W1 x + b1) + b2``, applied at every position (a 1x1 convolution for convolutions);
W2 and b2 start at zero, so a new block is the identity.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class DenoisingBlock(nn.Module):
    def __init__(self, channels: int, hidden: int, channel_dim: int):
        super().__init__()
        self.channels, self.hidden, self.channel_dim = channels, hidden, channel_dim
        self.down = nn.Linear(channels, hidden)
        self.up = nn.Linear(hidden, channels)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def spec(self) -> dict[str, Any]:
        return {"channels": self.channels, "hidden": self.hidden, "channel_dim": self.channel_dim}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = x.movedim(self.channel_dim, -1)
        return x + self.up(torch.relu(self.down(moved))).movedim(-1, self.channel_dim)


def block_key(layer_name: str) -> str:
    """A ModuleDict key for a dotted layer name."""
    return "root" if not layer_name else layer_name.replace(".", "__")


def apply_block(block: DenoisingBlock):
    """A forward hook that passes a layer's output (or a recurrent layer's output sequence) through ``block``."""

    def hook(module, inputs, output):
        if isinstance(output, tuple):
            return (block(output[0]),) + output[1:]
        return block(output)

    return hook
