"""DAC and ADC: signed, symmetric, uniform quantizers with clipping (DESIGN.md §3, Converters).

A quantizer with ``levels`` = 2^(bits-1) - 1 steps a side and bound b maps v to
``rint(clip(v, -b, b) * (levels / b)) * (b / levels)``: the grid {k b / levels : |k| <= levels}.
``levels = 0`` means no quantization. The DAC works per tile row block and normalizes its inputs
to [-1, 1] (by a fixed, calibrated or per-vector dynamic bound); the ADC works in normalized
output units with one bound per tile.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..config import ConverterConfig
from .jit import parallel_and_serial

# DAC modes, as the kernels see them
DAC_NONE = 0  # no clipping, no quantization: x passes unchanged
DAC_BOUNDED = 1  # fixed or calibrated bound per row block
DAC_DYNAMIC = 2  # per input vector abs-max per row block

_F = np.float32


def dac_mode(cfg: ConverterConfig) -> int:
    return {"none": DAC_NONE, "fixed": DAC_BOUNDED, "calibrated": DAC_BOUNDED, "dynamic": DAC_DYNAMIC}[cfg.range]


def quantizer_steps(bound: np.ndarray | float, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (levels / bound, bound / levels): the scale onto integers and the step back."""
    bound = np.asarray(bound, np.float32)
    if levels == 0:
        return np.ones_like(bound), np.ones_like(bound)
    return _F(levels) / bound, bound / _F(levels)


@njit(inline="always", error_model="numpy", cache=True)
def clip(v, bound):
    return min(max(v, -bound), bound)


@njit(inline="always", error_model="numpy", cache=True)
def quantize(v, bound, to_int, step):
    """One value onto the grid: rint(clip(v, -bound, bound) * to_int) * step."""
    return np.rint(clip(v, bound) * to_int) * step


@njit(parallel=True, error_model="numpy", cache=True)
def quantize_array(v, bound, levels):
    """Quantize a float32 array (any shape) with one bound; levels = 0 only clips."""
    flat = v.ravel()
    out = np.empty_like(flat)
    b = _F(bound)
    to_int = _F(levels) / b if levels > 0 else _F(1.0)
    step = b / _F(levels) if levels > 0 else _F(1.0)
    for k in prange(flat.size):
        out[k] = quantize(flat[k], b, to_int, step) if levels > 0 else clip(flat[k], b)
    return out.reshape(v.shape)


def _dac_into(x, row_edges, mode, bounds, levels, xq, scale, sq):
    """DAC every row block of every input vector.

    x (B, n_in) float32; row_edges (P+1,); bounds (P,) float32 (mode DAC_BOUNDED);
    writes xq (>= B, n_in) normalized inputs, scale (>= B, P) the bound each block was divided
    by (so x ~ xq * scale) and sq (>= B, P) the squared norm of each block of xq.
    Returns the number of non-finite inputs (the caller refuses them).
    """
    n_batch = x.shape[0]
    n_blocks = row_edges.shape[0] - 1
    one = _F(1.0)
    to_int = _F(levels)
    step = one / _F(levels) if levels > 0 else one
    bad = 0
    for b in prange(n_batch):
        for p in range(n_blocks):
            r0 = row_edges[p]
            r1 = row_edges[p + 1]
            s = one
            if mode == DAC_BOUNDED:
                s = bounds[p]
            elif mode == DAC_DYNAMIC:
                m = _F(0.0)
                for i in range(r0, r1):
                    m = max(m, abs(x[b, i]))
                s = m if m > 0 else one
            acc = _F(0.0)
            nonfinite = 0
            for i in range(r0, r1):
                v = x[b, i]
                nonfinite += not np.isfinite(v)
                if mode != DAC_NONE:
                    v = v / s
                    v = quantize(v, one, to_int, step) if levels > 0 else clip(v, one)
                xq[b, i] = v
                acc += v * v
            scale[b, p] = s
            sq[b, p] = acc
            bad += nonfinite
    return bad


dac_into_parallel, dac_into_serial = parallel_and_serial(_dac_into)
