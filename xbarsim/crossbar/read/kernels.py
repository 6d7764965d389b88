"""The tiled noisy MVM: BLAS block products, then one fused Numba pass per output.

Pipeline for a batch (docs/physics.md): DAC (``converters.dac_into_*``) -> per row block p,
``y[p] = xq[:, block p] @ gdiff_t[block p]`` (BLAS, ``blas.block_products``) -> read noise (one exact draw per output,
or every device's noise) -> output noise -> ADC per tile -> ``out += adc(y) * dac_scale * w_scale``
summed over row blocks in order; with iterative bound management, the tiles whose outputs for a
vector exceeded the ADC bound are read again at reduced input scale (``_bound_managed_rereads``)
and that vector's sum is formed again.

Determinism (docs/determinism.md): BLAS is called once per row block on the whole batch, so a
row's product may differ in the last float32 bits with the batch it came in (OpenBLAS picks its
kernel by the call's shape), never with the thread count. Normals come from ``rng`` streams keyed
per row block, counter = global vector index, so the noise draws of a vector are the same whatever
the batch split or thread count, and every Numba sum runs in a fixed order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .converters import DAC_NONE, clip, quantize
from ..jit import JIT_OPTIONS, parallel_and_serial
from ..laws.rng import normal_pair, normal_pairs_into

VAR_NONE = 0  # no read noise on this path
VAR_CONSTANT = 1  # read variance = var_const * ||xq_block||^2
VAR_MATRIX = 2  # read variance = (xq^2 @ var_t) per row block (a second GEMM)

_F = np.float32


def _add_device_read_noise(y, xq, n_batch, row_edges, xq_edges, sigma_pos_t, sigma_neg_t, keys, first_vector):
    """Add every device's read noise to the block products, in place (the honest path).

    y (P, >=B, n_out); xq (>=B, width) in the layout of ``blas.BlockLayout`` (block p's input
    i - r0 in column xq_edges[p] + i - r0), first n_batch rows used; sigma_*_t (n_in, n_out) normalized read std of G+ / G-;
    keys (P,) uint64. Device (i, j) of vector v in block p uses counter
    ((v * rows_p + i - r0) * n_out + j): first normal for G+, second for G-.
    y[p, b, j] += sum_i xq[b, i] * (sigma_pos[i, j] z+ - sigma_neg[i, j] z-), i in order.
    """
    n_out = y.shape[2]
    for b in prange(n_batch):
        vector = np.uint64(first_vector + b)
        # one row of normals at a time (``rng.normal_pairs_into``: consecutive counters)
        z_pos = np.empty(n_out, np.float32)
        z_neg = np.empty(n_out, np.float32)
        high = np.empty(n_out, np.uint32)
        low = np.empty(n_out, np.uint32)
        for p in range(row_edges.shape[0] - 1):
            r0 = row_edges[p]
            rows = np.uint64(row_edges[p + 1] - r0)
            shift = xq_edges[p] - r0
            key = keys[p]
            y_row = y[p, b]
            for i in range(r0, row_edges[p + 1]):
                xi = xq[b, i + shift]
                if xi == 0:
                    continue
                normal_pairs_into(key, (vector * rows + np.uint64(i - r0)) * np.uint64(n_out), z_pos, z_neg, high, low)
                sigma_pos_row, sigma_neg_row = sigma_pos_t[i], sigma_neg_t[i]
                for j in range(n_out):
                    y_row[j] += xi * (sigma_pos_row[j] * z_pos[j] - sigma_neg_row[j] * z_neg[j])


NOISE_PAIRS_PER_CHUNK = 1024  # normal pairs drawn at once (their scratch stays in L1): several vectors' draws


def _noisy_adc_accumulate(
    y, var_mode, var, sq, var_const, out_var, keys, first_vector, noisy,
    adc_levels, adc_clip, adc_bound, adc_to_int, adc_step, dac_scale, w_scale, z, bits, out, col_block, saturated,
):  # fmt: skip
    """Noise, ADC and digital accumulation over row blocks, fused; writes out (B, n_out).

    y (P, >=B, n_out) block products; var (P, >=B, n_out) per-output read variance (VAR_MATRIX);
    sq (>=B, P) squared input norms (VAR_CONSTANT); out_var: output-noise variance; all in
    converter units. keys (P,) uint64; output j of vector v in block p draws from counter
    v * half + (j mod half), half = ceil(n_out / 2) (first normal for j < half). noisy=False
    draws nothing. adc_* (P, n_out) per output (its tile's bound); dac_scale (>=B, P);
    w_scale (P, n_out); z (>= 2 * B * half,) float32 and bits (the same, uint32) flat scratch.
    y and out must not overlap (LLVM would not vectorise the pass).
    The vectors go in chunks whose draws are consecutive counters, about NOISE_PAIRS_PER_CHUNK
    pairs: drawn one vector at a time, 3 pairs (6 outputs) ran in scalar code at ~25 ns an output.
    Bound management (col_block (n_out,) int64 and saturated (>=B, P, Q) int8 zeroed by the caller;
    both None without it, and Numba then compiles the branches away): also writes the ADC outputs
    back into y and sets saturated[b, p, col_block[j]] = 1 when an output of vector b's tile
    (p, q) is beyond the ADC bound before the ADC.
    """
    n_batch = out.shape[0]
    n_out = out.shape[1]
    half = (n_out + 1) // 2
    rows = max(1, NOISE_PAIRS_PER_CHUNK // half)
    for chunk in prange((n_batch + rows - 1) // rows):
        b0 = chunk * rows
        b1 = min(n_batch, b0 + rows)
        pairs = (b1 - b0) * half
        # the chunk's draws: first normals, then second ones, each (vector - b0) * half + j
        start = 2 * b0 * half
        firsts = z[start : start + pairs]
        seconds = z[start + pairs : start + 2 * pairs]
        high = bits[start : start + pairs]
        low = bits[start + pairs : start + 2 * pairs]
        reads = np.empty(n_out, np.float32)
        for p in range(y.shape[0]):
            if noisy:
                normal_pairs_into(keys[p], np.uint64(first_vector + b0) * np.uint64(half), firsts, seconds, high, low)
            for b in range(b0, b1):
                y_row = y[p, b]
                saturated_row = saturated[b, p] if saturated is not None else None
                if noisy:
                    # the noisy reads; loops without branches vectorise (unsigned indices: Numba's
                    # fix-up of negative ones would stop LLVM)
                    drawn = np.uint64((b - b0) * half)
                    if var_mode == VAR_MATRIX:
                        var_row = var[p, b]
                        for j in range(half):
                            reads[j] = y_row[j] + np.sqrt(var_row[j] + out_var) * firsts[drawn + np.uint64(j)]
                        for k in range(n_out - half):
                            column = np.uint64(half + k)
                            reads[column] = y_row[column] + np.sqrt(var_row[column] + out_var) * seconds[drawn + np.uint64(k)]
                    else:
                        read_std = np.sqrt(var_const * sq[b, p] + out_var if var_mode == VAR_CONSTANT else out_var)
                        for j in range(half):
                            reads[j] = y_row[j] + read_std * firsts[drawn + np.uint64(j)]
                        for k in range(n_out - half):
                            column = np.uint64(half + k)
                            reads[column] = y_row[column] + read_std * seconds[drawn + np.uint64(k)]
                # one call per source array: with a phi of the two, LLVM's vector loop ran at half speed
                if noisy:
                    _adc_accumulate_row(reads, y_row, p, adc_levels, adc_clip, adc_bound[p], adc_to_int[p], adc_step[p],
                                        dac_scale[b, p], w_scale[p], out[b], col_block, saturated, saturated_row)  # fmt: skip
                else:
                    _adc_accumulate_row(y_row, y_row, p, adc_levels, adc_clip, adc_bound[p], adc_to_int[p], adc_step[p],
                                        dac_scale[b, p], w_scale[p], out[b], col_block, saturated, saturated_row)  # fmt: skip


@njit(inline="always", **JIT_OPTIONS)
def _adc_accumulate_row(read_row, y_row, p, adc_levels, adc_clip, bound, to_int, step, block_scale, w_row, out_row,
                        col_block, saturated, saturated_row):  # fmt: skip
    """ADC of one vector's reads in row block p (read_row (n_out,)), added into out_row; with
    bound management, the ADC outputs go to y_row and saturations to saturated_row (Q,)."""
    for j in range(out_row.shape[0]):
        v = read_row[j]
        if saturated is not None:
            if abs(v) > bound[j]:
                saturated_row[col_block[j]] = 1
        if adc_levels > 0:
            v = quantize(v, bound[j], to_int[j], step[j])
        elif adc_clip:
            v = clip(v, bound[j])
        if saturated is not None:
            y_row[j] = v
        if p == 0:
            out_row[j] = v * block_scale * w_row[j]
        else:
            out_row[j] += v * block_scale * w_row[j]


BM_ROUNDS = 32  # counter stride per (vector, tile) of the re-read streams: more than any limit allows (bm_max_factor <= 2^20)


def _bound_managed_rereads(
    vectors, raw, first_vector, row_edges, col_edges, dac_mode, dac_bounds, dac_levels, dac_scale, gdiff_t,
    var_mode, var_t, var_const, per_device, sigma_pos_t, sigma_neg_t, out_var, keys, device_keys,
    adc_levels, adc_bound, adc_to_int, adc_step, w_scale, max_reduction, saturated, y, out, rereads,
):  # fmt: skip
    """Iterative bound management (aihwkit's ITERATIVE, per vector and tile): every saturated
    tile (p, q) of vector b = vectors[k] is read again with its input scale doubled (the input
    halved), while an output still exceeds the ADC bound and the reduction r <= max_reduction;
    then out[b] is summed again over row blocks in order, the re-read tiles with scale
    dac_scale[b, p] * r. Writes rereads[k] = tile re-reads of that vector.

    raw (K, n_in) the vectors' input rows before the DAC; y (P, >=B, n_out) the first read's ADC
    outputs (overwritten for re-read tiles); saturated (>=B, P, Q). Products and variances of a
    re-read are float32 sums over the tile's rows in order. Re-read n (1, 2, ...) of tile (p, q)
    for vector v, with base c = (v * Q + q) * BM_ROUNDS + n: output j draws the first normal of
    counter c * n_out + j from keys[p] (read + output noise, or output noise only when
    per_device); device (i, j) the pair of (c * rows_p + i - r0) * n_out + j from device_keys[p].
    """
    n_p = row_edges.shape[0] - 1
    n_q = col_edges.shape[0] - 1
    n_out = out.shape[1]
    one = _F(1.0)
    to_int = _F(dac_levels)
    dac_step = one / _F(dac_levels) if dac_levels > 0 else one
    noisy = var_mode != VAR_NONE or out_var > 0
    for k in prange(vectors.shape[0]):
        b = vectors[k]
        vector = np.uint64(first_vector + b)
        scale = np.empty((n_p, n_q), np.float32)
        xq = np.empty(raw.shape[1], np.float32)
        acc = np.empty(n_out, np.float32)
        var_acc = np.empty(n_out, np.float32)
        count = 0
        for p in range(n_p):
            r0, r1 = row_edges[p], row_edges[p + 1]
            for q in range(n_q):
                scale[p, q] = dac_scale[b, p]
                if saturated[b, p, q] == 0:
                    continue
                c0, c1 = col_edges[q], col_edges[q + 1]
                reduction = _F(1.0)
                exceeded = True
                tile_round = 0
                while exceeded and reduction <= max_reduction:
                    reduction = reduction * _F(2.0)
                    count += 1
                    tile_round += 1
                    round_base = (vector * np.uint64(n_q) + np.uint64(q)) * np.uint64(BM_ROUNDS) + np.uint64(tile_round)
                    s = dac_scale[b, p] * reduction
                    for i in range(r0, r1):
                        if dac_mode == DAC_NONE:
                            xq[i] = raw[k, i] / s
                        elif dac_levels > 0:
                            xq[i] = quantize(raw[k, i] / s, one, to_int, dac_step)
                        else:
                            xq[i] = clip(raw[k, i] / s, one)
                    acc[c0:c1] = 0.0
                    var_acc[c0:c1] = 0.0
                    for i in range(r0, r1):
                        xi = xq[i]
                        for j in range(c0, c1):
                            acc[j] += xi * gdiff_t[i, j]
                    if per_device:
                        rows = np.uint64(r1 - r0)
                        for i in range(r0, r1):
                            xi = xq[i]
                            if xi == 0:
                                continue
                            base = (round_base * rows + np.uint64(i - r0)) * np.uint64(n_out)
                            for j in range(c0, c1):
                                z_pos, z_neg = normal_pair(device_keys[p], base + np.uint64(j))
                                acc[j] += xi * (sigma_pos_t[i, j] * z_pos - sigma_neg_t[i, j] * z_neg)
                    elif var_mode == VAR_MATRIX:
                        for i in range(r0, r1):
                            xi2 = xq[i] * xq[i]
                            for j in range(c0, c1):
                                var_acc[j] += xi2 * var_t[i, j]
                    elif var_mode == VAR_CONSTANT:
                        sq = _F(0.0)
                        for i in range(r0, r1):
                            sq += xq[i] * xq[i]
                        var_acc[c0:c1] = var_const * sq
                    exceeded = False
                    for j in range(c0, c1):
                        v = acc[j]
                        if noisy:
                            z0, _ = normal_pair(keys[p], round_base * np.uint64(n_out) + np.uint64(j))
                            v = v + np.sqrt(var_acc[j] + out_var) * z0
                        bound = adc_bound[p, j]
                        if abs(v) > bound:
                            exceeded = True
                        if adc_levels > 0:
                            v = quantize(v, bound, adc_to_int[p, j], adc_step[p, j])
                        else:
                            v = clip(v, bound)
                        y[p, b, j] = v
                scale[p, q] = dac_scale[b, p] * reduction
        rereads[k] = count
        out_row = out[b]
        out_row[:] = 0.0
        for p in range(n_p):
            for q in range(n_q):
                block_scale = scale[p, q]
                for j in range(col_edges[q], col_edges[q + 1]):
                    out_row[j] += y[p, b, j] * block_scale * w_scale[p, j]


add_device_read_noise_parallel, add_device_read_noise_serial = parallel_and_serial(_add_device_read_noise)
noisy_adc_accumulate_parallel, noisy_adc_accumulate_serial = parallel_and_serial(_noisy_adc_accumulate)
bound_managed_rereads_parallel, bound_managed_rereads_serial = parallel_and_serial(_bound_managed_rereads)
