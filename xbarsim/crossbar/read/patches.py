"""Convolution inputs as rows: each output pixel's receptive field, gathered from a channels-last
image straight into the DAC's buffer (im2col fused with the DAC: no unfolded copy in memory)."""

from __future__ import annotations

import numpy as np
from numba import get_thread_id, njit, prange

from .converters import dac_row
from ..jit import parallel_and_serial


@njit(inline="always", error_model="numpy", cache=True)
def gather_patch(x, flat, r, kernel, stride, padding, dilation, out_size, first_channel, channels, out, out_row):
    """Row r = (b, oh, ow) of the im2col matrix into out[out_row], in (kernel row, kernel column,
    channel) order: out[out_row, (i * kw + j) * channels + c] = x[b, oh * sh - pt + i * dh,
    ow * sw - pl + j * dw, first_channel + c], 0 outside the image. x (B, H, W, C) float32
    C-contiguous, flat = x.reshape(-1) (made once by the caller: a view costs reference counting);
    padding is (top, left). Where a kernel row's columns all lie inside the image and its channels
    are all of x's, the row is one run of kw * C values in memory and is copied as one (LeNet's
    5x5x3 patches: 25 copies of 3 values took ~9 ns each). Unsigned indices and no views, as
    ``converters.peak_bits`` explains."""
    height, width, depth = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = kernel
    out_h, out_w = out_size
    pixels = out_h * out_w
    b = r // pixels
    oh = (r - b * pixels) // out_w
    ow = r - b * pixels - oh * out_w
    first = np.uint64(first_channel)
    iw0 = ow * stride[1] - padding[1]
    runs = dilation[1] == 1 and channels == depth and iw0 >= 0 and iw0 + kw <= width
    run = np.uint64(kw * channels)
    for i in range(kh):
        ih = oh * stride[0] - padding[0] + i * dilation[0]
        row_start = np.uint64(i * kw * channels)
        if not (0 <= ih < height):
            for k in range(run):
                out[out_row, row_start + k] = 0.0
        elif runs:
            source = np.uint64(((b * height + ih) * width + iw0) * depth)
            for k in range(run):
                out[out_row, row_start + k] = flat[source + k]
        else:
            for j in range(kw):
                iw = iw0 + j * dilation[1]
                start = row_start + np.uint64(j * channels)
                if 0 <= iw < width:
                    for c in range(channels):
                        out[out_row, start + np.uint64(c)] = x[b, ih, iw, first + np.uint64(c)]
                else:
                    for c in range(channels):
                        out[out_row, start + np.uint64(c)] = 0.0


def _dac_patches_into(x, kernel, stride, padding, dilation, out_size, first_channel, channels, ones, scratch,
                      row_edges, xq_edges, mode, bounds, levels, want_sq, want_squares, xq, scale, sq, squares, v0, v1):  # fmt: skip
    """Gather patches v0..v1 of x (B, H, W, C) (of B * out_h * out_w, in (b, oh, ow) order), each followed by
    ``ones`` inputs fixed at 1 (a bias stored in rows), into a per-thread scratch row (scratch: (threads, n_in),
    this calling thread's own), and DAC it into the same rows of xq (>= B * out_h * out_w, xq_edges[-1])
    (``converters.dac_row``; not in place: LLVM would find the arrays overlapping and give up vectorising).
    Returns the number of blocks with NaN or Inf."""
    patch = kernel[0] * kernel[1] * channels
    flat = x.reshape(-1)
    bad = 0
    for k in prange(v1 - v0):
        r = v0 + k
        thread = get_thread_id()
        gather_patch(x, flat, r, kernel, stride, padding, dilation, out_size, first_channel, channels, scratch, thread)
        for t in range(ones):
            scratch[thread, patch + t] = 1.0
        bad += dac_row(scratch, thread, row_edges, xq_edges, mode, bounds, levels, want_sq, want_squares, xq, r, scale, sq, squares)
    return bad


dac_patches_into_parallel, dac_patches_into_serial = parallel_and_serial(_dac_patches_into)


def im2col(x: np.ndarray, kernel, stride, padding, dilation, out_size, first_channel: int, channels: int) -> np.ndarray:
    """The plain im2col matrix (B * out_h * out_w, kh * kw * channels) of x (B, H, W, C)."""
    rows = x.shape[0] * out_size[0] * out_size[1]
    out = np.empty((rows, kernel[0] * kernel[1] * channels), np.float32)
    _im2col(x, kernel, stride, padding, dilation, out_size, first_channel, channels, out)
    return out


@njit(parallel=True, error_model="numpy", cache=True)
def _im2col(x, kernel, stride, padding, dilation, out_size, first_channel, channels, out):
    flat = x.reshape(-1)
    for r in prange(out.shape[0]):
        gather_patch(x, flat, r, kernel, stride, padding, dilation, out_size, first_channel, channels, out, r)


def im2col_rows(x: np.ndarray, indices: np.ndarray, kernel, stride, padding, dilation, out_size, first_channel: int,
                channels: int) -> np.ndarray:  # fmt: skip
    """Only rows ``indices`` (K,) int of the im2col matrix of x: (K, kh * kw * channels)."""
    out = np.empty((len(indices), kernel[0] * kernel[1] * channels), np.float32)
    _im2col_rows(x, np.asarray(indices, np.int64), kernel, stride, padding, dilation, out_size, first_channel, channels, out)
    return out


@njit(error_model="numpy", cache=True)
def _im2col_rows(x, indices, kernel, stride, padding, dilation, out_size, first_channel, channels, out):
    flat = x.reshape(-1)
    for k in range(indices.shape[0]):
        gather_patch(x, flat, indices[k], kernel, stride, padding, dilation, out_size, first_channel, channels, out, k)
