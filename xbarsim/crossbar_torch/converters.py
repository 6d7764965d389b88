"""DAC and ADC in torch operations: ``crossbar.read.converters``'s quantizers, the same float32 operations.

A quantizer with ``levels`` steps a side and bound b maps v to ``rint(clip(v, -b, b) * (levels / b)) * (b / levels)``
(``torch.round`` rounds half to even, as ``rint``); levels = 0 only clips. The DAC normalizes each row block of
each input vector to [-1, 1] by its bound: a fixed or calibrated one per block, or the block's abs-max.
"""

from __future__ import annotations

import numpy as np
import torch

from ..crossbar.read.converters import DAC_BOUNDED, DAC_DYNAMIC, DAC_NONE


def unit_steps(levels: int) -> tuple[float, float]:
    """(levels, 1 / levels) of a quantizer on [-1, 1], as float32 values (1, 1 when levels = 0)."""
    if levels == 0:
        return 1.0, 1.0
    return float(np.float32(levels)), float(np.float32(1.0) / np.float32(levels))


def quantize(v: torch.Tensor, bound, to_int, step, levels: int) -> torch.Tensor:
    """v onto the grid of a quantizer with bound ``bound`` (a number or a tensor broadcast to v), its
    ``to_int`` = levels / bound and ``step`` = bound / levels; levels = 0 only clips."""
    if isinstance(bound, torch.Tensor):
        clipped = torch.clamp(v, min=-bound, max=bound)
    else:
        clipped = torch.clamp(v, -bound, bound)
    return clipped if levels == 0 else torch.round(clipped * to_int) * step


def dac(blocks: torch.Tensor, mode: int, bounds: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The DAC of row blocks (P, B, R) of the input vectors: (normalized inputs (P, B, R), the bound each
    block was divided by (P, B), the number of blocks holding NaN or Inf). bounds (P,): fixed or calibrated."""
    peak = blocks.abs().amax(dim=2)
    bad = int((~torch.isfinite(peak)).sum())
    if mode == DAC_NONE:
        return blocks, torch.ones_like(peak), bad
    if mode == DAC_DYNAMIC:
        scale = torch.where(peak > 0, peak, torch.ones_like(peak))
    elif mode == DAC_BOUNDED:
        scale = bounds[:, None].expand_as(peak)
    else:
        raise ValueError(f"unknown DAC mode {mode}")
    to_int, step = unit_steps(levels)
    return quantize(blocks / scale[:, :, None], 1.0, to_int, step, levels), scale, bad
