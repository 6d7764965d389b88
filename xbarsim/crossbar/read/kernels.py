"""The tiled noisy MVM: BLAS block products, then one fused Numba pass per output.

Pipeline for a batch (docs/physics.md): DAC (``converters.dac_into_*``) -> per row block p,
``y[p] = xq[:, block p] @ gdiff_t[block p]`` (BLAS, ``blas.block_products``) -> read noise (one exact draw per output,
or every device's noise) -> output noise -> ADC per tile -> ``out += adc(y) * dac_scale * w_scale``
summed over row blocks in order; with iterative bound management, the noise pass marks the tiles
whose outputs for a vector exceeded the ADC bound (``rereads`` reads them again).

Determinism (docs/determinism.md): BLAS is called once per row block on the whole batch (or on row
parts that compute each row as the whole would: ``blas.batch_parts``), so a row's product may differ in
the last float32 bits with the batch it came in (OpenBLAS picks its kernel by the call's shape), never
with the thread count. Normals come from ``rng`` streams keyed
per row block, counter = global vector index, so the noise draws of a vector are the same whatever
the batch split or thread count, and every Numba sum runs in a fixed order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .converters import clip, quantize
from ..jit import JIT_OPTIONS, parallel_and_serial
from ..laws.readnormals import normal_pairs_into

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
        # one row of normals at a time (``readnormals.normal_pairs_into``: consecutive counters)
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
    adc_levels, adc_clip, adc_bound, adc_to_int, adc_step, dac_scale, w_scale, z, bits, out, col_edges, saturated, adc,
    v0, v1,
):  # fmt: skip
    """Noise, ADC and digital accumulation over row blocks, fused, for vectors v0..v1 (rows of out (B, n_out),
    which it writes; the other rows are left alone, so threads may run disjoint ranges side by side).

    y (P, >=B, n_out) block products; var (P, >=B, n_out) per-output read variance (VAR_MATRIX);
    sq (>=B, P) squared input norms (VAR_CONSTANT); out_var: output-noise variance; all in
    converter units. keys (P,) uint64; output j of vector v in block p draws from counter
    v * half + (j mod half), half = ceil(n_out / 2) (first normal for j < half). noisy=False
    draws nothing. adc_* (P, n_out) per output (its tile's bound); dac_scale (>=B, P);
    w_scale (P, n_out); z (>= 2 * B * half,) float32 and bits (the same, uint32) flat scratch.
    y and out must not overlap (LLVM would not vectorise the pass).
    The vectors go in chunks whose draws are consecutive counters, about NOISE_PAIRS_PER_CHUNK
    pairs: drawn one vector at a time, 3 pairs (6 outputs) ran in scalar code at ~25 ns an output.
    Bound management (col_edges (Q+1,) int64, saturated (>=B, P, Q) int8 and adc (P, >=B, n_out);
    all None without it, and Numba then compiles the branches away): also writes the ADC outputs
    into adc and sets saturated[b, p, q] to whether an output of vector b's tile (p, q) is beyond
    the ADC bound before the ADC.
    """
    n_out = out.shape[1]
    half = (n_out + 1) // 2
    rows = max(1, NOISE_PAIRS_PER_CHUNK // half)
    for chunk in prange((v1 - v0 + rows - 1) // rows):
        b0 = v0 + chunk * rows
        b1 = min(v1, b0 + rows)
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
                adc_row = adc[p, b] if adc is not None else None
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
                    _adc_accumulate_row(reads, p, adc_levels, adc_clip, adc_bound[p], adc_to_int[p], adc_step[p],
                                        dac_scale[b, p], w_scale[p], out[b], col_edges, saturated_row, adc_row)  # fmt: skip
                else:
                    _adc_accumulate_row(y_row, p, adc_levels, adc_clip, adc_bound[p], adc_to_int[p], adc_step[p],
                                        dac_scale[b, p], w_scale[p], out[b], col_edges, saturated_row, adc_row)  # fmt: skip


@njit(inline="always", **JIT_OPTIONS)
def _adc_accumulate_row(read_row, p, adc_levels, adc_clip, bound, to_int, step, block_scale, w_row, out_row, col_edges,
                        saturated_row, adc_row):  # fmt: skip
    """ADC of one vector's reads in row block p (read_row (n_out,)), added into out_row; with
    bound management, the ADC outputs go to adc_row and whether each tile's reads exceed its
    bound to saturated_row (Q,) (a count per tile: a branch-free loop that vectorises)."""
    for j in range(out_row.shape[0]):
        v = read_row[j]
        if adc_levels > 0:
            v = quantize(v, bound[j], to_int[j], step[j])
        elif adc_clip:
            v = clip(v, bound[j])
        if adc_row is not None:
            adc_row[j] = v
        if p == 0:
            out_row[j] = v * block_scale * w_row[j]
        else:
            out_row[j] += v * block_scale * w_row[j]
    if saturated_row is not None:
        for q in range(col_edges.shape[0] - 1):
            c0 = np.uint64(col_edges[q])
            over = 0
            for j in range(col_edges[q + 1] - col_edges[q]):
                over += abs(read_row[c0 + np.uint64(j)]) > bound[c0 + np.uint64(j)]
            saturated_row[q] = over > 0


add_device_read_noise_parallel, add_device_read_noise_serial = parallel_and_serial(_add_device_read_noise)
noisy_adc_accumulate_parallel, noisy_adc_accumulate_serial = parallel_and_serial(_noisy_adc_accumulate)
