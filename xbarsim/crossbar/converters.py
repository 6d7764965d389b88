"""DAC and ADC: signed, symmetric, uniform quantizers with clipping (docs/physics.md §6).

A quantizer with ``levels`` = 2^(bits-1) - 1 steps a side and bound b maps v to
``rint(clip(v, -b, b) * (levels / b)) * (b / levels)``: the grid {k b / levels : |k| <= levels}.
``levels = 0`` means no quantization. The DAC works per tile row block and normalizes its inputs
to [-1, 1] (by a fixed, calibrated or per-vector dynamic bound); the ADC works in normalized
output units with one bound per tile.
"""

from __future__ import annotations

import numpy as np
from numba import get_thread_id, njit, prange

from ..config import ConverterConfig, TileConfig
from .jit import parallel_and_serial
from .rng import _bits_from_f32, _f32_from_bits

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


SQ_LANES = 16  # the squared norms add element i into lane i % SQ_LANES, then the lanes in order
_ABS_BITS = np.uint32(0x7FFFFFFF)
_INF_BITS = np.uint32(0x7F800000)


@njit(inline="always", error_model="numpy", cache=True)
def dac_row(x_row, row_edges, mode, bounds, levels, want_sq, want_squares, xq_row, scale_row, sq_row, squares_row, lanes):
    """DAC one input vector, block by block (may run in place: x_row is xq_row).

    Writes xq_row (n_in,) normalized inputs, scale_row (P,) the bound each block was divided by
    (so x ~ xq * scale), if want_sq sq_row (P,) the squared norm of each block of xq, and if
    want_squares squares_row (n_in,) = xq * xq; lanes is (SQ_LANES,) scratch.
    Returns the number of blocks holding NaN or Inf (the caller refuses them).
    """
    one = _F(1.0)
    to_int = _F(levels)
    step = one / _F(levels) if levels > 0 else one
    bad = 0
    for p in range(row_edges.shape[0] - 1):
        # loops run over block views from 0: Numba then knows indices are >= 0 and
        # LLVM vectorises (a loop from a variable start checks for negative indices)
        x_block = x_row[row_edges[p] : row_edges[p + 1]]
        q_block = xq_row[row_edges[p] : row_edges[p + 1]]
        n = x_block.shape[0]
        # abs-max and the NaN/Inf check on the IEEE bits: non-negative floats order like
        # their bit patterns, and integer reductions vectorise where float ones do not
        peak_bits = np.uint32(0)
        for i in range(n):
            peak_bits = max(peak_bits, _bits_from_f32(x_block[i]) & _ABS_BITS)
        bad += peak_bits >= _INF_BITS
        s = one
        if mode == DAC_BOUNDED:
            s = bounds[p]
        elif mode == DAC_DYNAMIC and peak_bits > 0:
            s = _f32_from_bits(peak_bits)
        if mode == DAC_NONE:
            for i in range(n):
                q_block[i] = x_block[i]
        elif levels > 0:
            for i in range(n):
                q_block[i] = quantize(x_block[i] / s, one, to_int, step)
        else:
            for i in range(n):
                q_block[i] = clip(x_block[i] / s, one)
        scale_row[p] = s
        if want_squares:
            s_block = squares_row[row_edges[p] : row_edges[p + 1]]
            for i in range(n):
                s_block[i] = q_block[i] * q_block[i]
        if want_sq:
            lanes[:] = 0.0
            n_full = n // SQ_LANES * SQ_LANES
            for i0 in range(0, n_full, SQ_LANES):
                for lane in range(SQ_LANES):
                    v = q_block[i0 + lane]
                    lanes[lane] += v * v
            for i in range(n_full, n):
                v = q_block[i]
                lanes[i - n_full] += v * v
            total = _F(0.0)
            for lane in range(SQ_LANES):
                total += lanes[lane]
            sq_row[p] = total
    return bad


@njit(error_model="numpy", cache=True)
def count_nonfinite_rows(x):
    """The number of rows of x (B, n) float32 holding NaN or Inf (IEEE bits, as ``dac_row``)."""
    bad = 0
    for b in range(x.shape[0]):
        row = x[b]
        peak_bits = np.uint32(0)
        for i in range(row.shape[0]):
            peak_bits = max(peak_bits, _bits_from_f32(row[i]) & _ABS_BITS)
        bad += peak_bits >= _INF_BITS
    return bad


def _dac_into(x, row_edges, mode, bounds, levels, want_sq, want_squares, xq, scale, sq, squares, lanes_per_thread):
    """DAC every input vector (``dac_row``): x (B, n_in) float32 into xq (>= B, n_in),
    scale and sq (>= B, P), squares (>= B, n_in) when want_squares (else any (1, n_in) array);
    lanes_per_thread (threads, SQ_LANES) is scratch (no allocation per row).
    Rows from B on are left as they are. Returns the number of blocks holding NaN or Inf."""
    bad = 0
    for b in prange(x.shape[0]):
        lanes = lanes_per_thread[get_thread_id()]
        squares_row = squares[b] if want_squares else squares[0]
        bad += dac_row(x[b], row_edges, mode, bounds, levels, want_sq, want_squares, xq[b], scale[b], sq[b],
                       squares_row, lanes)  # fmt: skip
    return bad


dac_into_parallel, dac_into_serial = parallel_and_serial(_dac_into)
