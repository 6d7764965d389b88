"""One read of a TileArray on a torch device: ``crossbar.read.readout.read`` in whole-block torch operations.

DAC of every row block of every vector -> one batched GEMM for all block products -> the read and output
noise, one exact draw per output (the CPU's counters and streams, ``readnormals``) -> ADC -> with iterative bound
management the re-reads of the saturated tiles (``rereads``) -> the sum over row blocks, in block order.
Every step is a handful of elementwise operations over (P, B, n_out) tensors: no loop over vectors, and
one host synchronisation per read (the DAC's count of non-finite inputs), more only where tiles saturate.
The per-device path (``read_noise_path: per_device``) draws every device's noise in chunks of vectors.
"""

from __future__ import annotations

import numpy as np
import torch

from ..crossbar.laws import rng as host_rng
from ..crossbar.read.readout import ReadPlan
from . import readnormals, rereads, rng
from .blocks import blocked
from .converters import dac, quantize

DEVICE_DRAWS_PER_CHUNK = 1 << 24  # per-device noise: normals drawn at once (two 64 MB float32 tensors)


def read(tiles, n_batch: int, x: torch.Tensor, keys: dict[int, torch.Tensor], first_vector: int, record: bool) -> tuple[torch.Tensor, int]:
    """(outputs (n_batch, n_out) float32, tile re-reads) of ``tiles`` for the input rows x (n_batch, n_in),
    vector k drawing its read noise at counter first_vector + k of ``keys``' streams ((P,) int64 each)."""
    plan = ReadPlan.of(tiles)
    if plan.converter_free and tiles.g_direct is not None and not record:
        return _direct(tiles, x), 0
    layout, arrays = blocked(tiles)
    xq, scale, bad = dac(layout.inputs(x), plan.dac_mode, tiles._dac_bounds_read, plan.dac_levels)
    if bad:
        raise ValueError(f"mvm input contains NaN or Inf (in {bad} vector block(s))")
    y = torch.bmm(xq, arrays["gdiff"])  # (P, B, n_out): every tile's ideal product
    if record:
        tiles.recorder.partials(tiles, y.cpu().numpy())

    per_device = arrays["sigma_pos"] is not None
    if per_device:
        _add_device_noise(y, xq, layout.sizes, arrays, keys[host_rng.PURPOSE_READ_DEVICE], first_vector)
        std = _output_std(plan)
        stream = keys[host_rng.PURPOSE_OUTPUT]
    else:
        std = _read_std(tiles, plan, xq, arrays["var"])
        stream = keys[host_rng.PURPOSE_READ]
    reads = y if std is None else y + std * output_normals(stream, first_vector, n_batch, plan.n_out)

    bound, to_int, step = (a[:, None, :] for a in tiles._adc_columns)
    saturated = _saturated(reads, bound, tiles.grid) if plan.bound_management else None
    if plan.adc_levels > 0 or plan.adc_clip:
        reads = quantize(reads, bound, to_int, step, plan.adc_levels)
    col_scale = scale[:, :, None]
    count = 0
    if saturated is not None and bool(saturated.any()):
        col_scale = col_scale.expand(-1, -1, plan.n_out).clone()
        count = rereads.reread_saturated(tiles, plan, x, saturated, first_vector, keys, scale, per_device, reads, col_scale)
    return _accumulate(reads, col_scale, tiles.out_scales), count


def output_normals(keys: torch.Tensor, first_vector: int, n_batch: int, n_out: int) -> torch.Tensor:
    """(P, n_batch, n_out) float32: output j < half of vector v in block p takes the first normal of counter
    v * half + j of stream keys[p], output j >= half the second normal of counter v * half + j - half
    (half = ceil(n_out / 2)): the counters of the CPU's noise pass."""
    half = (n_out + 1) // 2
    device = keys.device
    counters = (rng.counters(first_vector, n_batch, device) * half)[:, None] + torch.arange(half, dtype=torch.int64, device=device)
    first, second = readnormals.read_normal_pairs(keys[:, None, None], counters)
    return torch.cat([first, second], dim=2)[:, :, :n_out]


def _output_std(plan: ReadPlan) -> float | None:
    """The std of the output noise alone (float32 value), None without it."""
    return float(np.sqrt(plan.out_var)) if plan.out_var > 0 else None


def _read_std(tiles, plan: ReadPlan, xq: torch.Tensor, var_blocks: torch.Tensor | None):
    """The std of every output's read + output noise: (P, B, n_out) for G-dependent read noise (a second
    batched GEMM, ``xq^2 @ var``), (P, B, 1) for a constant one (the blocks' squared norms), a number for
    output noise alone, None for no noise."""
    if var_blocks is not None:
        return rng.sqrt_f32(torch.bmm(xq * xq, var_blocks) + float(plan.out_var))
    if tiles.read_var_const > 0:
        return rng.sqrt_f32(float(tiles.read_var_const) * (xq * xq).sum(dim=2, keepdim=True) + float(plan.out_var))
    return _output_std(plan)


def _saturated(reads: torch.Tensor, bound: torch.Tensor, grid) -> torch.Tensor:
    """(P, B, Q) bool: whether an output of vector b's tile (p, q) is beyond its ADC bound before the ADC."""
    beyond = reads.abs() > bound
    edges = grid.col_edges.tolist()
    return torch.stack([beyond[:, :, c0:c1].any(dim=2) for c0, c1 in zip(edges[:-1], edges[1:])], dim=2)


def _accumulate(adc: torch.Tensor, col_scale: torch.Tensor, out_scales: torch.Tensor) -> torch.Tensor:
    """sum over row blocks p, in order, of adc[p] * (DAC scale) * (output scale): (B, n_out)."""
    out = adc[0] * col_scale[0] * out_scales[0]
    for p in range(1, adc.shape[0]):
        out = out + adc[p] * col_scale[p] * out_scales[p]
    return out


def _add_device_noise(y, xq, sizes, arrays, keys, first_vector: int) -> None:
    """y (P, B, n_out) += every device's read noise: device (i, j) of vector v in block p draws the pair of
    counter (v * rows_p + i) * n_out + j of keys[p] (G+ the first normal, G- the second)."""
    n_batch, n_out = y.shape[1], y.shape[2]
    height = xq.shape[2]
    device = y.device
    row = torch.arange(height, dtype=torch.int64, device=device)[:, None] * n_out
    column = torch.arange(n_out, dtype=torch.int64, device=device)
    chunk = max(1, DEVICE_DRAWS_PER_CHUNK // (height * n_out))
    for p, rows in enumerate(sizes):
        for b0 in range(0, n_batch, chunk):
            b1 = min(n_batch, b0 + chunk)
            vectors = rng.counters(first_vector + b0, b1 - b0, device) * (rows * n_out)
            z_pos, z_neg = readnormals.read_normal_pairs(keys[p], vectors[:, None, None] + (row + column))
            noise = arrays["sigma_pos"][p] * z_pos - arrays["sigma_neg"][p] * z_neg  # (b, height, n_out)
            y[p, b0:b1] += (xq[p, b0:b1, :, None] * noise).sum(dim=1)


def _direct(tiles, x: torch.Tensor) -> torch.Tensor:
    """A chip without converters or noise: sum over row blocks p, in order, of x[:, block p] @ g_direct[block p]."""
    bad = int((~torch.isfinite(x)).any(dim=1).sum())
    if bad:
        raise ValueError(f"mvm input contains NaN or Inf (in {bad} vector(s))")
    edges = tiles.grid.row_edges.tolist()
    out = x[:, edges[0] : edges[1]] @ tiles.g_direct[edges[0] : edges[1]]
    for r0, r1 in zip(edges[1:-1], edges[2:]):
        out = out + x[:, r0:r1] @ tiles.g_direct[r0:r1]
    return out
