"""One read of a TileArray's crossbars: the pipeline from input vectors to outputs.

DAC (``inputs.dac``) -> block products (BLAS, ``kernels.block_products``) -> read noise and ADC,
accumulated over row blocks (``kernels.noisy_adc_accumulate_*``) -> with iterative bound
management, the re-reads of saturated tiles. A chip without converters or noise (``g_direct``)
reads with one GEMM per row block and nothing else. Work buffers come from ``workspace``, and
the config is looked up once (``ReadPlan``): at batch 1 the Python around the kernels costs as
much as they do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import converters, kernels, workspace
from ..laws import rng
from .. import threads
from .inputs import InputRows


@dataclass(frozen=True)
class ReadPlan:
    """What a read of one TileArray needs from its config and grid, looked up once (at batch 1,
    pydantic and property lookups would cost as much as the kernels)."""

    n_in: int
    n_out: int
    n_p: int
    n_q: int
    dac_mode: int
    dac_levels: int
    adc_levels: int
    adc_clip: bool
    out_var: np.float32
    bound_management: bool
    bm_max_reduction: np.float32
    converter_free: bool  # no DAC or ADC range and no output noise
    width: int  # max(n_in, n_out): a read's work per input vector, for threads.use_parallel

    @classmethod
    def of(cls, tiles) -> ReadPlan:
        """The plan of ``tiles``, made at its first read and again when it is given another config."""
        cached = tiles.__dict__.get("_read_plan")
        if cached is not None and cached[0] is tiles.cfg:
            return cached[1]
        tile_cfg, grid = tiles.cfg.tile, tiles.grid
        converter_free = tile_cfg.dac.range == "none" and tile_cfg.adc.range == "none" and tile_cfg.out_noise == 0
        plan = cls(grid.n_in, grid.n_out, *grid.shape, converters.dac_mode(tile_cfg.dac), tile_cfg.dac.levels,
                   tile_cfg.adc.levels, tile_cfg.adc.range != "none", np.float32(tile_cfg.out_noise**2),
                   tile_cfg.bound_management == "iterative", np.float32(converters.bm_max_reduction(tile_cfg)), converter_free,
                   max(grid.n_in, grid.n_out))  # fmt: skip
        tiles._read_plan = (tiles.cfg, plan)
        return plan


def read(tiles, n_batch: int, inputs, keys_by_purpose: dict, first_vector: int, record: bool) -> tuple[np.ndarray, int]:
    """(outputs (n_batch, n_out) float32, tile re-reads) of ``tiles`` for n_batch input vectors,
    vector k drawing its read noise at counter first_vector + k of ``keys_by_purpose``'s streams.
    ``inputs.dac(parallel, row_edges, mode, bounds, levels, want_sq, want_squares, xq, scale, sq,
    squares)`` fills the DAC outputs; ``record``: show the products to ``tiles.recorder``."""
    plan = ReadPlan.of(tiles)
    if plan.converter_free and tiles.g_direct is not None and not record and isinstance(inputs, InputRows):
        return _direct(tiles, inputs.x), 0
    row_edges = tiles.grid.row_edges
    parallel = threads.use_parallel(n_batch * plan.width)
    per_device = tiles.read_sigma_t is not None
    var_mode = kernels.VAR_NONE
    if not per_device:
        var_mode = kernels.VAR_MATRIX if tiles.read_var_t is not None else kernels.VAR_CONSTANT if tiles.read_var_const > 0 else kernels.VAR_NONE
    xq, squares, dac_scale, sq, y, var, z, bits, saturated = _work_arrays(plan, n_batch, var_mode)
    bad = inputs.dac(parallel, row_edges, plan.dac_mode, tiles.dac_bounds, plan.dac_levels, var_mode == kernels.VAR_CONSTANT,
                     var_mode == kernels.VAR_MATRIX, xq, dac_scale, sq, squares)  # fmt: skip
    if bad:
        raise ValueError(f"mvm input contains NaN or Inf (in {bad} vector block(s))")

    out = np.empty((n_batch, plan.n_out), np.float32)
    kernels.block_products(xq, tiles.gdiff_t, row_edges, y)
    # (y now holds the ideal block products: a correction of them belongs here, before the noise)
    if record:
        tiles.recorder.partials(tiles, y)

    if per_device:
        add_noise = kernels.add_device_read_noise_parallel if parallel else kernels.add_device_read_noise_serial
        add_noise(y, xq, n_batch, row_edges, *tiles.read_sigma_t, keys_by_purpose[rng.PURPOSE_READ_DEVICE], first_vector)
        keys = keys_by_purpose[rng.PURPOSE_OUTPUT]
    else:
        keys = keys_by_purpose[rng.PURPOSE_READ]
        if var_mode == kernels.VAR_MATRIX:
            kernels.block_products(squares, tiles.read_var_t, row_edges, var)
    noisy = var_mode != kernels.VAR_NONE or plan.out_var > 0

    bound, to_int, step = tiles._adc_columns
    bm = saturated is not None
    if bm:
        saturated[:] = 0
    finish = kernels.noisy_adc_accumulate_parallel if parallel else kernels.noisy_adc_accumulate_serial
    finish(
        y, var_mode, var, sq, tiles.read_var_const, plan.out_var, keys, first_vector, noisy,
        plan.adc_levels, plan.adc_clip, bound, to_int, step, dac_scale, tiles.out_scales, z, bits, out,
        tiles._col_block if bm else None, saturated,
    )  # fmt: skip
    rereads = 0
    if bm:
        rereads = _reread_saturated(tiles, plan, inputs, saturated, first_vector, keys_by_purpose, dac_scale, var_mode, y, out)
    return out, rereads


def _work_arrays(plan: ReadPlan, n_batch: int, var_mode: int) -> tuple:
    """(xq, squares, dac_scale, sq, y, var, z, bits, saturated): a read's work arrays in this thread's
    ``workspace``, the same views again for the same shapes (at batch 1, asking the workspace
    for each of them cost ~1 us apiece). squares and var are placeholders unless var_mode is
    VAR_MATRIX; saturated is None without bound management."""
    key = (plan.n_in, plan.n_out, plan.n_p, plan.n_q, n_batch, var_mode, plan.bound_management)
    arrays = workspace.views(key)
    if arrays is not None:
        return arrays
    n_in, n_out, n_p = plan.n_in, plan.n_out, plan.n_p
    matrix = var_mode == kernels.VAR_MATRIX
    xq = workspace.buffer("xq", (n_batch, n_in))
    squares = workspace.buffer("squares", (n_batch, n_in)) if matrix else xq[:1]
    # the products go to their own buffer even for one row block: with y aliasing out, LLVM cannot
    # vectorise the noise/ADC pass (measured: 512x512 batch 256, 8-bit + additive noise, 0.43x -> 0.5-0.6x)
    y = workspace.buffer("y", (n_p, n_batch, n_out))
    draws = n_batch * 2 * ((n_out + 1) // 2)  # the noise pass's normals: a pair per two outputs of a vector
    arrays = (
        xq, squares, workspace.buffer("dac_scale", (n_batch, n_p)), workspace.buffer("sq", (n_batch, n_p)), y,
        workspace.buffer("var", y.shape) if matrix else y[:0], workspace.buffer("z", (draws,)),
        workspace.buffer("bits", (draws,), np.uint32),
        workspace.buffer("saturated", (n_batch, n_p, plan.n_q), np.int8) if plan.bound_management else None,
    )  # fmt: skip
    return workspace.keep(key, arrays)


def _direct(tiles, x: np.ndarray) -> np.ndarray:
    """A chip without converters or noise: sum over row blocks p, in order, of
    x[:, block p] @ g_direct[block p] (the output scales are in g_direct). One GEMM per block,
    not one over all inputs: OpenBLAS's bits depend on its thread count when a reduction is long."""
    bad = converters.count_nonfinite_rows(x)
    if bad:
        raise ValueError(f"mvm input contains NaN or Inf (in {bad} vector(s))")
    row_edges, g = tiles.grid.row_edges, tiles.g_direct
    first = int(row_edges[1])
    out = np.matmul(x[:, :first], g[:first])
    if len(row_edges) > 2:
        partial = workspace.buffer("y", out.shape)
        for r0, r1 in zip(row_edges[1:-1].tolist(), row_edges[2:].tolist()):
            out += np.matmul(x[:, r0:r1], g[r0:r1], out=partial)
    return out


def _reread_saturated(tiles, plan: ReadPlan, inputs, saturated, first_vector, keys_by_purpose, dac_scale, var_mode, y, out) -> int:
    """Bound management: read the saturated vectors' tiles again at reduced input scale
    (``kernels.bound_managed_rereads_*``); returns the number of tile re-reads."""
    vectors = np.flatnonzero(saturated.reshape(len(saturated), -1).any(axis=1))
    if len(vectors) == 0:
        return 0
    grid = tiles.grid
    per_device = tiles.read_sigma_t is not None
    sigma_pos, sigma_neg = tiles.read_sigma_t if per_device else (tiles.gdiff_t[:1], tiles.gdiff_t[:1])
    var_t = tiles.read_var_t if tiles.read_var_t is not None else tiles.gdiff_t[:1]
    bound, to_int, step = tiles._adc_columns
    rereads = np.zeros(len(vectors), np.int64)
    parallel = threads.use_parallel(len(vectors) * plan.n_out)
    kernel_fn = kernels.bound_managed_rereads_parallel if parallel else kernels.bound_managed_rereads_serial
    kernel_fn(
        vectors, inputs.rows(vectors), first_vector, grid.row_edges, grid.col_edges,
        plan.dac_mode, tiles.dac_bounds, plan.dac_levels, dac_scale, tiles.gdiff_t,
        var_mode, var_t, tiles.read_var_const, per_device, sigma_pos, sigma_neg, plan.out_var,
        keys_by_purpose[rng.PURPOSE_BM_READ], keys_by_purpose[rng.PURPOSE_BM_DEVICE],
        plan.adc_levels, bound, to_int, step, tiles.out_scales, plan.bm_max_reduction, saturated, y, out, rereads,
    )  # fmt: skip
    return int(rereads.sum())
