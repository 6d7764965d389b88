"""Iterative bound management (aihwkit's ITERATIVE, per vector and tile), in rounds.

After the first read, every tile (p, q) whose outputs for vector b exceeded the ADC bound is read
again with its input scale doubled (the input halved), while an output still exceeds the bound and
the reduction r <= max_reduction (``converters.bm_max_reduction``). Round n reads every tile still
saturated at reduction 2^n: the vectors of row block p with such a tile go through the DAC at
``dac_scale[b, p] * 2^n`` (``_round_inputs``) and one BLAS product per row block (``blas.product``,
all of the block's columns), then their saturated tiles get their noise and ADC
(``_finish_round``). At the end each re-read vector's output is summed again over row blocks in
order, a re-read tile with its last input scale (``_sum_again``).

Draws (docs/determinism.md; ``readnormals``, noise stream version 2): re-read n of tile (p, q)
for vector v, with base c = (v * Q + q) * BM_ROUNDS + n and the tile's w outputs from column c0:
output c0 + j draws from ``keys[p]`` (read + output noise, or output noise only on the per-device
path) counter c * ceil(n_out / 2) + (j mod h), h = ceil(w / 2), its first normal for j < h and
its second for j >= h; device (i, j) the pair of counter (c * rows_p + i - r0) * n_out + j from
``device_keys[p]``. A re-read's products
are one BLAS row of its round's call, its squared input norm a float32 sum over the rows in order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import blas, workspace
from .converters import DAC_NONE, clip, quantize
from .kernels import VAR_CONSTANT, VAR_MATRIX, VAR_NONE
from ..jit import JIT_OPTIONS
from ..laws import rng
from ..laws.readnormals import normal_pairs_into

BM_ROUNDS = 32  # counter stride per (vector, tile) of the re-read streams: more than any limit allows (bm_max_factor <= 2^20)

_F = np.float32
_kernel = njit(nogil=True, **JIT_OPTIONS)


def reread_saturated(tiles, plan, inputs, buffers, n_batch: int, first_vector: int, keys_by_purpose: dict, var_mode: int,
                     out: np.ndarray) -> int:  # fmt: skip
    """Bound management after a read of n_batch vectors (``readout.read``: ``plan`` its ReadPlan,
    ``buffers`` its ReadBuffers, with the products in y, the ADC outputs in adc (overwritten for
    re-read tiles) and the saturated tiles marked); out (B, n_out) is summed again for the re-read
    vectors. Returns the number of tile re-reads."""
    saturated = buffers.saturated
    vectors = np.flatnonzero(saturated[:n_batch].reshape(n_batch, -1).any(axis=1))
    if len(vectors) == 0:
        return 0
    raw = inputs.rows(vectors)
    blocks, grid = plan.blocks, tiles.grid
    n_p, n_q, n_out, n_vectors = plan.n_p, plan.n_q, plan.n_out, len(vectors)
    per_device = tiles.read_sigma_t is not None
    placeholder = tiles.gdiff_t[:1]
    sigma_pos, sigma_neg = tiles.read_sigma_t if per_device else (placeholder, placeholder)
    bound, to_int, step = tiles._adc_columns
    keys, device_keys = keys_by_purpose[rng.PURPOSE_BM_READ], keys_by_purpose[rng.PURPOSE_BM_DEVICE]

    active = np.ascontiguousarray(saturated[vectors])  # (K, P, Q): tiles still to read again
    scale = np.repeat(buffers.dac_scale[vectors][:, :, None], n_q, axis=2)  # (K, P, Q): each tile's last input scale
    rereads = np.zeros(n_vectors, np.int64)
    chosen = np.empty((n_p, n_vectors), np.int64)  # per row block, the vectors read this round
    counts = np.empty(n_p, np.int64)
    xq = workspace.buffer("bm_xq", (n_p, n_vectors, blocks.widest))
    squares = workspace.buffer("bm_squares", xq.shape) if var_mode == VAR_MATRIX else xq[:, :1]
    sq = workspace.buffer("bm_sq", (n_p, n_vectors))
    products = workspace.buffer("bm_y", (n_p, n_vectors, n_out))
    variances = workspace.buffer("bm_var", products.shape) if var_mode == VAR_MATRIX else products[:, :1]
    z, bits = workspace.buffer("bm_z", (3, n_out + 1)), workspace.buffer("bm_bits", (2, n_out), np.uint32)
    reduction, tile_round, still_active = _F(1.0), 0, 1  # the first round reads every saturated tile
    while reduction <= plan.bm_max_reduction and still_active:
        reduction, tile_round = reduction * _F(2.0), tile_round + 1
        _round_inputs(raw, vectors, active, blocks.row_edges, blocks.edges, plan.dac_mode, plan.dac_levels, buffers.dac_scale, reduction,
                      var_mode, chosen, counts, xq, squares, sq)  # fmt: skip
        for p in np.flatnonzero(counts).tolist():
            (e0, e1, r0), n = blocks.spans[p], int(counts[p])
            blas.product(xq[p, :n, : e1 - e0], tiles.gdiff_rows[r0 : r0 + e1 - e0], products[p, :n])
            if var_mode == VAR_MATRIX:
                blas.product(squares[p, :n, : e1 - e0], tiles.read_var_rows[r0 : r0 + e1 - e0], variances[p, :n])
        still_active = _finish_round(vectors, first_vector, active, chosen, counts, tile_round, reduction, plan.bm_max_reduction, grid.row_edges,
                      grid.col_edges, xq, products, var_mode, variances, sq, tiles.read_var_const, per_device, sigma_pos, sigma_neg,
                      plan.out_var, keys, device_keys, plan.adc_levels, bound, to_int, step, buffers.dac_scale, scale, rereads,
                      buffers.adc, z, bits)  # fmt: skip
    _sum_again(vectors, grid.col_edges, scale, tiles.out_scales, buffers.adc, out)
    return int(rereads.sum())


@_kernel
def _round_inputs(raw, vectors, active, row_edges, xq_edges, dac_mode, dac_levels, dac_scale, reduction, var_mode, chosen, counts, xq,
                  squares, sq):  # fmt: skip
    """For each row block p, the vectors k (rows of raw (K, n_in), batch index vectors[k]) with a
    tile still active in it: chosen[p, :counts[p]] = k, and their inputs at scale
    dac_scale[b, p] * reduction through the DAC into xq[p, n, :] (zeros after the block's rows up
    to its padded K, ``blas.BlockLayout``); for VAR_MATRIX squares likewise, for VAR_CONSTANT
    sq[p, n] their squared norm (a float32 sum in order)."""
    one = _F(1.0)
    to_int = _F(dac_levels)
    dac_step = one / _F(dac_levels) if dac_levels > 0 else one
    for p in range(row_edges.shape[0] - 1):
        r0, rows, width = row_edges[p], row_edges[p + 1] - row_edges[p], xq_edges[p + 1] - xq_edges[p]
        n = 0
        for k in range(vectors.shape[0]):
            live = 0
            for q in range(active.shape[2]):
                live += active[k, p, q]
            if live == 0:
                continue
            chosen[p, n] = k
            s = dac_scale[vectors[k], p] * reduction
            x_row, xq_row = raw[k], xq[p, n]
            if dac_mode == DAC_NONE:
                for i in range(rows):
                    xq_row[i] = x_row[r0 + i] / s
            elif dac_levels > 0:
                for i in range(rows):
                    xq_row[i] = quantize(x_row[r0 + i] / s, one, to_int, dac_step)
            else:
                for i in range(rows):
                    xq_row[i] = clip(x_row[r0 + i] / s, one)
            xq_row[rows:width] = 0.0
            if var_mode == VAR_CONSTANT:
                total = _F(0.0)
                for i in range(rows):
                    total += xq_row[i] * xq_row[i]
                sq[p, n] = total
            elif var_mode == VAR_MATRIX:
                squares_row = squares[p, n]
                for i in range(width):
                    squares_row[i] = xq_row[i] * xq_row[i]
            n += 1
        counts[p] = n


@_kernel
def _finish_round(vectors, first_vector, active, chosen, counts, tile_round, reduction, max_reduction, row_edges, col_edges, xq,
                  products, var_mode, variances, sq, var_const, per_device, sigma_pos_t, sigma_neg_t, out_var, keys, device_keys,
                  adc_levels, adc_bound, adc_to_int, adc_step, dac_scale, scale, rereads, y, z, bits):  # fmt: skip
    """The noise and ADC of every tile re-read this round (``reread_saturated``): writes y[p, b]'s
    columns of the tile, scale[k, p, q] = dac_scale[b, p] * reduction, counts the re-read in
    rereads[k], and leaves active[k, p, q] set while an output exceeded the bound and another round
    is allowed; returns how many tiles are left set. z (3, >= n_out) float32 and bits (2, >= n_out) uint32:
    scratch. Loops over a tile's columns use unsigned indices and no branches, so that LLVM vectorises them."""
    n_out = y.shape[2]
    still_active = 0
    half_out = np.uint64((n_out + 1) // 2)
    noisy = var_mode != VAR_NONE or out_var > 0
    allowed = reduction <= max_reduction
    reads = z[2]
    for p in range(row_edges.shape[0] - 1):
        r0, rows = row_edges[p], np.uint64(row_edges[p + 1] - row_edges[p])
        bound, to_int, step = adc_bound[p], adc_to_int[p], adc_step[p]
        for n in range(counts[p]):
            k = chosen[p, n]
            b = vectors[k]
            vector = np.uint64(first_vector + b)
            acc = products[p, n]
            variance = variances[p, n]
            y_row = y[p, b]
            for q in range(col_edges.shape[0] - 1):
                if active[k, p, q] == 0:
                    continue
                c0 = np.uint64(col_edges[q])
                width = col_edges[q + 1] - col_edges[q]
                rereads[k] += 1
                round_base = (vector * np.uint64(col_edges.shape[0] - 1) + np.uint64(q)) * np.uint64(BM_ROUNDS) + np.uint64(tile_round)
                if per_device:
                    for i in range(rows):
                        xi = xq[p, n, i]
                        if xi == 0:
                            continue
                        row = np.uint64(r0 + i)
                        normal_pairs_into(device_keys[p], (round_base * rows + np.uint64(i)) * np.uint64(n_out) + c0, z[0, :width],
                                          z[1, :width], bits[0, :width], bits[1, :width])  # fmt: skip
                        for j in range(width):
                            column = c0 + np.uint64(j)
                            acc[column] += xi * (sigma_pos_t[row, column] * z[0, j] - sigma_neg_t[row, column] * z[1, j])
                if noisy:
                    # a pair per two outputs: the first normals for the tile's first half, then the second ones
                    half = (width + 1) // 2
                    normal_pairs_into(keys[p], round_base * np.uint64(half_out), z[0, :half], z[0, half : 2 * half], bits[0, :half],
                                      bits[1, :half])  # fmt: skip
                    if var_mode == VAR_MATRIX:
                        for j in range(width):
                            column = c0 + np.uint64(j)
                            reads[j] = acc[column] + np.sqrt(variance[column] + out_var) * z[0, j]
                    else:
                        std = np.sqrt(var_const * sq[p, n] + out_var if var_mode == VAR_CONSTANT else out_var)
                        for j in range(width):
                            reads[j] = acc[c0 + np.uint64(j)] + std * z[0, j]
                else:
                    for j in range(width):
                        reads[j] = acc[c0 + np.uint64(j)]
                over = 0
                for j in range(width):
                    over += abs(reads[j]) > bound[c0 + np.uint64(j)]
                if adc_levels > 0:
                    for j in range(width):
                        column = c0 + np.uint64(j)
                        y_row[column] = quantize(reads[j], bound[column], to_int[column], step[column])
                else:
                    for j in range(width):
                        column = c0 + np.uint64(j)
                        y_row[column] = clip(reads[j], bound[column])
                scale[k, p, q] = dac_scale[b, p] * reduction
                active[k, p, q] = over > 0 and allowed
                still_active += active[k, p, q]
    return still_active


@_kernel
def _sum_again(vectors, col_edges, scale, w_scale, y, out):
    """out[b] = the sum over row blocks p, in order, of y[p, b] * (its tile's scale) * w_scale[p]
    for every re-read vector b = vectors[k]."""
    for k in range(vectors.shape[0]):
        b = vectors[k]
        out_row = out[b]
        for p in range(y.shape[0]):
            y_row, w_row = y[p, b], w_scale[p]
            for q in range(col_edges.shape[0] - 1):
                block_scale = scale[k, p, q]
                c0 = np.uint64(col_edges[q])
                if p == 0:
                    for j in range(col_edges[q + 1] - col_edges[q]):
                        column = c0 + np.uint64(j)
                        out_row[column] = _F(0.0) + y_row[column] * block_scale * w_row[column]
                else:
                    for j in range(col_edges[q + 1] - col_edges[q]):
                        column = c0 + np.uint64(j)
                        out_row[column] += y_row[column] * block_scale * w_row[column]
