"""One read of a TileArray's crossbars: the pipeline from input vectors to outputs.

DAC (``inputs.dac``) -> block products (BLAS, ``blas.block_products``) -> read noise and ADC,
accumulated over row blocks (``kernels.noisy_adc_accumulate_*``) -> with iterative bound
management, the re-reads of saturated tiles (``rereads``). A chip without converters or noise (``g_direct``)
reads with one GEMM per row block and nothing else. Work buffers come from ``workspace``, and
the config is looked up once (``ReadPlan``): at batch 1 the Python around the kernels costs as
much as they do.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import blas, blasthreads, converters, kernels, workspace
from ..laws import rng
from .. import threads
from .inputs import InputRows
from .rereads import reread_saturated


@dataclass(frozen=True)
class ReadPlan:
    """What a read of one TileArray needs from its config and grid, looked up once (at batch 1,
    pydantic and property lookups would cost as much as the kernels)."""

    n_in: int
    n_out: int
    n_p: int
    n_q: int
    blocks: blas.BlockLayout  # where each row block's inputs sit in the DAC's output (zero-padded for BLAS)
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
        plan = cls(grid.n_in, grid.n_out, *grid.shape, blas.layout(grid.row_edges), converters.dac_mode(tile_cfg.dac),
                   tile_cfg.dac.levels, tile_cfg.adc.levels, tile_cfg.adc.range != "none", np.float32(tile_cfg.out_noise**2),
                   tile_cfg.bound_management == "iterative", np.float32(converters.bm_max_reduction(tile_cfg)), converter_free,
                   max(grid.n_in, grid.n_out))  # fmt: skip
        tiles._read_plan = (tiles.cfg, plan)
        return plan


@dataclass(frozen=True)
class ReadBuffers:
    """A read's work arrays, float32 in converter units unless said (views of this thread's
    ``workspace``, valid until its next read of the same shapes)."""

    xq: np.ndarray  # (B, width) the DAC's outputs, in the row blocks' ``blas.BlockLayout``
    squares: np.ndarray  # (B, width) xq * xq for VAR_MATRIX, else a placeholder
    dac_scale: np.ndarray  # (B, P) the bound each vector's block was divided by (x ~ xq * dac_scale)
    sq: np.ndarray  # (B, P) squared norm of each block of xq (VAR_CONSTANT)
    y: np.ndarray  # (P, B, n_out) the block products
    var: np.ndarray  # (P, B, n_out) their read variances for VAR_MATRIX, else a placeholder
    z: np.ndarray  # (2 B ceil(n_out / 2),) the noise pass's normals
    bits: np.ndarray  # the same, uint32: the hashes they are made from
    saturated: np.ndarray | None  # (B, P, Q) int8: tiles whose read exceeded an ADC bound; None without bound management
    adc: np.ndarray | None  # (P, B, n_out) the ADC outputs, for bound management's re-reads; None without it


def read(tiles, n_batch: int, inputs, keys_by_purpose: dict, first_vector: int, record: bool) -> tuple[np.ndarray, int]:
    """(outputs (n_batch, n_out) float32, tile re-reads) of ``tiles`` for n_batch input vectors,
    vector k drawing its read noise at counter first_vector + k of ``keys_by_purpose``'s streams.
    ``inputs.dac(parallel, plan, bounds, want_sq, want_squares, buffers, v0, v1)`` fills the DAC outputs
    (``InputRows``, ``PatchRows``); ``record``: show the products to ``tiles.recorder``."""
    plan = ReadPlan.of(tiles)
    if plan.converter_free and tiles.g_direct is not None and not record and isinstance(inputs, InputRows):
        return _direct(tiles, plan, inputs.x), 0
    parallel = threads.use_parallel(n_batch * plan.width)
    per_device = tiles.read_sigma_t is not None
    var_mode = kernels.VAR_NONE
    if not per_device:
        var_mode = kernels.VAR_MATRIX if tiles.read_var_t is not None else kernels.VAR_CONSTANT if tiles.read_var_const > 0 else kernels.VAR_NONE
    buffers = _work_arrays(plan, n_batch, var_mode)
    dac_args = (plan, tiles.dac_bounds, var_mode == kernels.VAR_CONSTANT, var_mode == kernels.VAR_MATRIX, buffers)
    out = np.empty((n_batch, plan.n_out), np.float32)
    keys = keys_by_purpose[rng.PURPOSE_OUTPUT if per_device else rng.PURPOSE_READ]
    noisy = var_mode != kernels.VAR_NONE or plan.out_var > 0
    bound, to_int, step = tiles._adc_columns
    bm = buffers.saturated is not None
    pass_args = (
        buffers.y, var_mode, buffers.var, buffers.sq, tiles.read_var_const, plan.out_var, keys, first_vector, noisy,
        plan.adc_levels, plan.adc_clip, bound, to_int, step, buffers.dac_scale, tiles.out_scales, buffers.z, buffers.bits, out,
        tiles.grid.col_edges if bm else None, buffers.saturated, buffers.adc,
    )  # fmt: skip
    parts = [(0, n_batch)] if record or per_device else blas.batch_parts(n_batch, plan.blocks, plan.n_out)
    if len(parts) > 1:
        # each part of the batch runs its DAC, products and noise/ADC pass on its own thread: the passes
        # run beside the other part's GEMMs, where around whole GEMMs they would run on one core
        bad = [0] * len(parts)
        blasthreads.run([functools.partial(_read_part, tiles, plan, buffers, var_mode, inputs, dac_args, pass_args, bad, k, *part)
                         for k, part in enumerate(parts)])  # fmt: skip
        bad = sum(bad)
    else:
        bad = inputs.dac(parallel, *dac_args, 0, n_batch)
        if not bad:
            _products_then_pass(tiles, plan, buffers, n_batch, var_mode, per_device, keys_by_purpose, first_vector, record, parallel,
                                pass_args)  # fmt: skip
    if bad:
        raise ValueError(f"mvm input contains NaN or Inf (in {bad} vector block(s))")
    rereads = reread_saturated(tiles, plan, inputs, buffers, n_batch, first_vector, keys_by_purpose, var_mode, out) if bm else 0
    return out, rereads


def _read_part(tiles, plan: ReadPlan, buffers: ReadBuffers, var_mode: int, inputs, dac_args: tuple, pass_args: tuple, bad: list[int],
               part: int, v0: int, v1: int) -> None:  # fmt: skip
    """Vectors v0..v1 of a read (range ``part`` of ``blas.batch_parts``), on this thread: their DAC (``inputs.dac`` with
    ``dac_args``; the blocks holding NaN or Inf counted into bad[part]), block products, read variances (VAR_MATRIX),
    then their noise/ADC pass (``pass_args``: the pass's arguments but the range)."""
    bad[part] = inputs.dac(False, *dac_args, v0, v1)
    if bad[part]:
        return
    blas.block_products_of_rows(buffers.xq, tiles.gdiff_rows, plan.blocks, buffers.y, v0, v1)
    if var_mode == kernels.VAR_MATRIX:
        blas.block_products_of_rows(buffers.squares, tiles.read_var_rows, plan.blocks, buffers.var, v0, v1)
    kernels.noisy_adc_accumulate_serial(*pass_args, v0, v1)


def _products_then_pass(tiles, plan: ReadPlan, buffers: ReadBuffers, n_batch: int, var_mode: int, per_device: bool,
                        keys_by_purpose: dict, first_vector: int, record: bool, parallel: bool, pass_args: tuple) -> None:  # fmt: skip
    """A read's block products over the whole batch (each cut as ``blas.product`` cuts it), the calibration's
    look at them, the read noise of every device or the read variances, then the noise/ADC pass."""
    y = buffers.y
    blas.block_products(buffers.xq, tiles.gdiff_rows, plan.blocks, y)
    # (y now holds the ideal block products: a correction of them belongs here, before the noise)
    if record:
        tiles.recorder.partials(tiles, y)
    if per_device:
        add_noise = kernels.add_device_read_noise_parallel if parallel else kernels.add_device_read_noise_serial
        add_noise(y, buffers.xq, n_batch, tiles.grid.row_edges, plan.blocks.edges, *tiles.read_sigma_t,
                  keys_by_purpose[rng.PURPOSE_READ_DEVICE], first_vector)  # fmt: skip
    elif var_mode == kernels.VAR_MATRIX:
        blas.block_products(buffers.squares, tiles.read_var_rows, plan.blocks, buffers.var)
    finish = kernels.noisy_adc_accumulate_parallel if parallel else kernels.noisy_adc_accumulate_serial
    finish(*pass_args, 0, n_batch)


def _work_arrays(plan: ReadPlan, n_batch: int, var_mode: int) -> ReadBuffers:
    """A read's ``ReadBuffers`` in this thread's ``workspace``, the same views again for the same
    shapes (at batch 1, asking the workspace for each of them cost ~1 us apiece)."""
    key = (plan.n_in, plan.n_out, plan.n_p, plan.n_q, plan.blocks.width, n_batch, var_mode, plan.bound_management)
    arrays = workspace.views(key)
    if arrays is not None:
        return arrays
    n_out, n_p, width = plan.n_out, plan.n_p, plan.blocks.width
    matrix = var_mode == kernels.VAR_MATRIX
    xq = workspace.buffer("xq", (n_batch, width))
    # the products go to their own buffer even for one row block: with y aliasing out, LLVM cannot
    # vectorise the noise/ADC pass (measured: 512x512 batch 256, 8-bit + additive noise, 0.43x -> 0.5-0.6x)
    y = workspace.buffer("y", (n_p, n_batch, n_out))
    draws = n_batch * 2 * ((n_out + 1) // 2)  # the noise pass's normals: a pair per two outputs of a vector
    buffers = ReadBuffers(
        xq, workspace.buffer("squares", (n_batch, width)) if matrix else xq[:1], workspace.buffer("dac_scale", (n_batch, n_p)),
        workspace.buffer("sq", (n_batch, n_p)), y, workspace.buffer("var", y.shape) if matrix else y[:0],
        workspace.buffer("z", (draws,)), workspace.buffer("bits", (draws,), np.uint32),
        workspace.buffer("saturated", (n_batch, n_p, plan.n_q), np.int8) if plan.bound_management else None,
        workspace.buffer("adc", y.shape) if plan.bound_management else None,
    )  # fmt: skip
    return workspace.keep(key, buffers)


def _direct(tiles, plan: ReadPlan, x: np.ndarray) -> np.ndarray:
    """A chip without converters or noise: sum over row blocks p, in order, of
    x[:, block p] @ g_direct[block p] (the output scales are in g_direct). One GEMM per block,
    not one over all inputs, each within BLAS's rule (``blas``)."""
    bad = converters.count_nonfinite_rows(x)
    if bad:
        raise ValueError(f"mvm input contains NaN or Inf (in {bad} vector(s))")
    return blas.summed_block_products(blas.widen(x, plan.blocks), tiles.g_direct_rows, plan.blocks)
