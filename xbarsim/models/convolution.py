"""Convolution geometry shared by the analog and the hardware-aware convolutions (2-D view)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_same(x: torch.Tensor, kernel: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    """Zero-pad x (B, C, H, W) for padding='same' (stride 1, torch's rule: total dilation * (k - 1),
    the extra pixel after)."""
    total = [d * (k - 1) for d, k in zip(dilation, kernel)]
    return F.pad(x, (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2))


def output_size(size: tuple[int, int], kernel, stride, padding, dilation) -> tuple[int, int]:
    """(out_h, out_w) of a convolution of an image of ``size`` with symmetric ``padding``."""
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(size, padding, dilation, kernel, stride))
    if min(out) < 1:
        raise ValueError(f"input of spatial size {tuple(size)} is smaller than the kernel")
    return out
