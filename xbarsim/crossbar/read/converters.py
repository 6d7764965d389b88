"""DAC and ADC: signed, symmetric, uniform quantizers with clipping (docs/physics.md §6).

A quantizer with ``levels`` = 2^(bits-1) - 1 steps a side and bound b maps v to
``rint(clip(v, -b, b) * (levels / b)) * (b / levels)``: the grid {k b / levels : |k| <= levels}.
``levels = 0`` means no quantization. The DAC works per tile row block and normalizes its inputs
to [-1, 1] (by a fixed, calibrated or per-vector dynamic bound); the ADC works in normalized
output units with one bound per tile.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...config import ConverterConfig, TileConfig
from ..jit import parallel_and_serial
from .lanesum import sum_of_squares_by_lane
from ..laws.rng import _bits_from_f32, _f32_from_bits

# DAC modes, as the kernels see them
DAC_NONE = 0  # no clipping, no quantization: x passes unchanged
DAC_BOUNDED = 1  # fixed or calibrated bound per row block
DAC_DYNAMIC = 2  # per input vector abs-max per row block

_F = np.float32


def dac_mode(cfg: ConverterConfig) -> int:
    return {"none": DAC_NONE, "fixed": DAC_BOUNDED, "calibrated": DAC_BOUNDED, "dynamic": DAC_DYNAMIC}[cfg.range]


def bm_max_reduction(tile: TileConfig) -> float:
    """The largest input-scale reduction after which iterative bound management may still read
    again: aihwkit stops once the reduction exceeds max_bm_factor, or max_bm_res / (DAC step)."""
    limit = tile.bm_max_factor
    if tile.dac.levels > 0:
        limit = min(limit, tile.bm_max_res * tile.dac.levels)
    return float(limit)


def quantizer_steps(bound: np.ndarray | float, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (levels / bound, bound / levels): the scale onto integers and the step back."""
    bound = np.asarray(bound, np.float32)
    if levels == 0:
        return np.ones_like(bound), np.ones_like(bound)
    return _F(levels) / bound, bound / _F(levels)


@njit(inline="always", error_model="numpy", cache=True)
def clip(v, bound):
    """min(max(v, -bound), bound), as Numba's min and max (NaN passes through), written as two
    selects with -bound outside: the builtins kept LLVM from vectorising the DAC's loops."""
    low = -bound
    v = low if low > v else v
    return bound if bound < v else v


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


_INF_BITS = np.uint32(0x7F800000)


@njit(inline="always", error_model="numpy", cache=True)
def peak_bits(x, row, start, n):
    """The IEEE bits of max |x[row, start + i]| over i < n (NaN and Inf give bits >= _INF_BITS).

    Non-negative floats order like their bit patterns, and integer reductions vectorise where
    float ones do not. ``start`` is uint64: unsigned indices skip Numba's negative-index fix-up,
    which would stop LLVM vectorising (views starting at 0 would do the same, but every view
    costs an atomic reference count increment and decrement: ~100 ns per row)."""
    peak = np.uint32(0)
    for i in range(n):
        peak = max(peak, _bits_from_f32(abs(x[row, start + np.uint64(i)])))
    return peak


@njit(inline="always", error_model="numpy", cache=True)
def dac_row(x, x_row, row_edges, xq_edges, mode, bounds, levels, want_sq, want_squares, xq, row, scale, sq, squares):
    """DAC input vector x[x_row] (x: 2-D float32), block by block, into row ``row`` of the outputs.

    Writes xq[row] in the layout of ``blas.BlockLayout``: block p's normalized inputs from column
    xq_edges[p] on, zeros after them up to xq_edges[p + 1]; scale[row] (P,) the bound each block
    was divided by (so x ~ xq * scale), if want_sq sq[row] (P,) the squared norm of each block of
    xq (``lanesum``), and if want_squares squares[row] = xq[row] * xq[row] (same layout). xq is
    C-contiguous and not x (LLVM checks the two for overlap, and would run scalar code).
    Returns the number of blocks holding NaN or Inf (the caller refuses them).
    """
    one = _F(1.0)
    to_int = _F(levels)
    step = one / _F(levels) if levels > 0 else one
    bad = 0
    for p in range(row_edges.shape[0] - 1):
        r0 = np.uint64(row_edges[p])
        c0 = np.uint64(xq_edges[p])
        n = row_edges[p + 1] - row_edges[p]
        peak = peak_bits(x, x_row, r0, n)
        bad += peak >= _INF_BITS
        s = one
        if mode == DAC_BOUNDED:
            s = bounds[p]
        elif mode == DAC_DYNAMIC and peak > 0:
            s = _f32_from_bits(peak)
        if mode == DAC_NONE:
            for i in range(n):
                xq[row, c0 + np.uint64(i)] = x[x_row, r0 + np.uint64(i)]
        elif levels > 0:
            for i in range(n):
                xq[row, c0 + np.uint64(i)] = quantize(x[x_row, r0 + np.uint64(i)] / s, one, to_int, step)
        else:
            for i in range(n):
                xq[row, c0 + np.uint64(i)] = clip(x[x_row, r0 + np.uint64(i)] / s, one)
        for i in range(n, xq_edges[p + 1] - xq_edges[p]):
            xq[row, c0 + np.uint64(i)] = 0.0
        scale[row, p] = s
        if want_squares:
            for i in range(xq_edges[p + 1] - xq_edges[p]):
                v = xq[row, c0 + np.uint64(i)]
                squares[row, c0 + np.uint64(i)] = v * v
        if want_sq:
            sq[row, p] = sum_of_squares_by_lane(xq, row, xq_edges[p], xq_edges[p] + n)
    return bad


@njit(error_model="numpy", cache=True)
def count_nonfinite_rows(x):
    """The number of rows of x (B, n) float32 holding NaN or Inf (IEEE bits, as ``dac_row``)."""
    bad = 0
    for b in range(x.shape[0]):
        bad += peak_bits(x, b, np.uint64(0), x.shape[1]) >= _INF_BITS
    return bad


def _dac_into(x, row_edges, xq_edges, mode, bounds, levels, want_sq, want_squares, xq, scale, sq, squares, v0, v1):
    """DAC input vectors v0..v1 (``dac_row``): rows of x (B, n_in) float32 into the same rows of xq
    (>= B, xq_edges[-1]), scale and sq (>= B, P), squares (like xq) when want_squares (else any (1, width)
    array). Other rows are left as they are. Returns the number of blocks holding NaN or Inf."""
    bad = 0
    for k in prange(v1 - v0):
        b = v0 + k
        bad += dac_row(x, b, row_edges, xq_edges, mode, bounds, levels, want_sq, want_squares, xq, b, scale, sq, squares)
    return bad


dac_into_parallel, dac_into_serial = parallel_and_serial(_dac_into)
