"""Iterative bound management on a torch device: every saturated (vector, tile) pair read again at half the input
scale, round by round, all pairs of a tile in one batch (``crossbar.read.rereads``).

A round takes the pairs still saturated (one ``nonzero``: a host synchronisation per round, at most
log2(bm_max_factor) + 1 rounds), groups them by tile, and reads each tile's pairs as one GEMM with their
own noise: re-read n of tile (p, q) for vector v draws from counter base c = (v * Q + q) * BM_ROUNDS + n,
its outputs as ``readnormals.reread_output_normals`` says, device (i, j) the pair of (c * rows_p + i) * n_out + j
(the CPU's streams). A pair's ADC outputs and input scale are replaced by its last re-read's.
"""

from __future__ import annotations

import numpy as np
import torch

from ..crossbar.laws import rng as host_rng
from ..crossbar.read.converters import DAC_NONE
from ..crossbar.read.rereads import BM_ROUNDS
from ..crossbar.read.readout import ReadPlan
from . import readnormals, rng
from .converters import quantize, unit_steps

DEVICE_DRAWS_PER_CHUNK = 1 << 24


def reread_saturated(tiles, plan: ReadPlan, x: torch.Tensor, saturated: torch.Tensor, first_vector: int, keys: dict,
                     scale: torch.Tensor, per_device: bool, adc: torch.Tensor, col_scale: torch.Tensor) -> int:  # fmt: skip
    """Re-read the saturated pairs (saturated (P, B, Q) bool) of input rows x (B, n_in); writes the final ADC
    outputs into adc (P, B, n_out) and the input scales used into col_scale (P, B, n_out). scale (P, B): the
    first read's DAC scales. Returns the number of tile re-reads."""
    n_q = tiles.grid.shape[1]
    reduction = np.float32(1.0)
    active, count, round_ = saturated, 0, 0
    while reduction <= plan.bm_max_reduction:
        pairs = active.permute(0, 2, 1).nonzero()  # (K, 3) rows (p, q, b), in tile order
        if len(pairs) == 0:
            break
        reduction = reduction * np.float32(2.0)
        round_ += 1
        count += len(pairs)
        sizes = torch.bincount(pairs[:, 0] * n_q + pairs[:, 1], minlength=active.shape[0] * n_q).tolist()
        active = torch.zeros_like(active)
        start = 0
        for tile, size in enumerate(sizes):
            if size == 0:
                continue
            p, q = divmod(tile, n_q)
            vectors = pairs[start : start + size, 2]
            start += size
            s = scale[p, vectors] * float(reduction)
            v = _reread(tiles, plan, x, vectors, p, q, s, round_, first_vector, keys, per_device)
            c0, c1 = int(tiles.grid.col_edges[q]), int(tiles.grid.col_edges[q + 1])
            bound, to_int, step = (a[p, c0:c1] for a in tiles._adc_columns)
            active[p, vectors, q] = (v.abs() > bound).any(dim=1)
            adc[p, vectors, c0:c1] = quantize(v, bound, to_int, step, plan.adc_levels)
            col_scale[p, vectors, c0:c1] = s[:, None]
    return count


def _reread(tiles, plan: ReadPlan, x, vectors, p: int, q: int, s, round_: int, first_vector: int, keys: dict, per_device: bool):
    """The noisy outputs (K, columns of tile q) before the ADC of re-read ``round_`` of tile (p, q) for the
    vectors ``vectors`` (K,), their input scaled down to s (K,)."""
    grid = tiles.grid
    r0, r1 = int(grid.row_edges[p]), int(grid.row_edges[p + 1])
    c0, c1 = int(grid.col_edges[q]), int(grid.col_edges[q + 1])
    xq = x[vectors, r0:r1] / s[:, None]
    if plan.dac_mode != DAC_NONE:
        xq = quantize(xq, 1.0, *unit_steps(plan.dac_levels), plan.dac_levels)
    acc = xq @ tiles.gdiff_t[r0:r1, c0:c1]
    base = ((vectors + first_vector) * grid.shape[1] + q) * BM_ROUNDS + round_  # (K,) int64
    variance = None
    if per_device:
        columns = torch.arange(c0, c1, dtype=torch.int64, device=x.device)
        acc = acc + _device_noise(tiles, xq, base, p, r0, r1, columns, keys[host_rng.PURPOSE_BM_DEVICE])
    elif tiles.read_var_t is not None:
        variance = (xq * xq) @ tiles.read_var_t[r0:r1, c0:c1]
    elif tiles.read_var_const > 0:
        variance = float(tiles.read_var_const) * (xq * xq).sum(dim=1, keepdim=True)
    if variance is None and plan.out_var == 0:
        return acc
    z = readnormals.reread_output_normals(keys[host_rng.PURPOSE_BM_READ][p], base, grid.n_out, c0, c1)
    std = rng.sqrt_f32(variance + float(plan.out_var)) if variance is not None else float(np.sqrt(plan.out_var))
    return acc + std * z


def _device_noise(tiles, xq, base, p: int, r0: int, r1: int, columns, keys):
    """sum_i xq[k, i] (sigma+ z+ - sigma- z-) of re-read rows xq (K, rows) over the columns of one tile."""
    n_out, rows = tiles.grid.n_out, r1 - r0
    sigma_pos, sigma_neg = (sigma[r0:r1, columns] for sigma in tiles.read_sigma_t)
    device_index = torch.arange(rows, dtype=torch.int64, device=xq.device)[:, None] * n_out + columns
    chunk = max(1, DEVICE_DRAWS_PER_CHUNK // (rows * len(columns)))
    parts = []
    for k0 in range(0, len(base), chunk):
        z_pos, z_neg = readnormals.read_normal_pairs(keys[p], (base[k0 : k0 + chunk] * (rows * n_out))[:, None, None] + device_index)
        parts.append((xq[k0 : k0 + chunk, :, None] * (sigma_pos * z_pos - sigma_neg * z_neg)).sum(dim=1))
    return torch.cat(parts)
