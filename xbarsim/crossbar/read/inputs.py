"""The input vectors of a tile MVM, as the kernels take them: rows of a matrix, or the patches of
an image (a convolution), each able to run the DAC over all of them and to give some rows again."""

from __future__ import annotations

import numba
import numpy as np

from . import converters, patches, workspace

_pool = {"started": False}


def _dac_arguments(plan, bounds: np.ndarray, want_sq: bool, want_squares: bool, buffers) -> tuple:
    """The arguments of ``converters.dac_row`` after the input: a read's plan (``readout.ReadPlan``)
    and buffers (``readout.ReadBuffers``)."""
    return (plan.blocks.row_edges, plan.blocks.edges, plan.dac_mode, bounds, plan.dac_levels, want_sq, want_squares,
            buffers.xq, buffers.dac_scale, buffers.sq, buffers.squares)  # fmt: skip


class InputRows:
    """The input vectors of ``TileArray._mvm``: rows x (B, n_in) float32. ``dac(parallel, plan,
    bounds, want_sq, want_squares, buffers, v0, v1)`` fills the DAC outputs of vectors v0..v1
    (``converters.dac_into_*``) and returns the number of blocks holding NaN or Inf; ``rows(indices)``
    gives some raw rows again (for bound-management re-reads)."""

    def __init__(self, x: np.ndarray):
        self.x = x

    def dac(self, parallel: bool, plan, bounds: np.ndarray, want_sq: bool, want_squares: bool, buffers, v0: int, v1: int) -> int:
        kernel_fn = converters.dac_into_parallel if parallel else converters.dac_into_serial
        return kernel_fn(self.x, *_dac_arguments(plan, bounds, want_sq, want_squares, buffers), v0, v1)

    def rows(self, indices: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.x[indices])


class PatchRows:
    """The patches of a channels-last image as input vectors (``TileArray.mvm_patches``); geometry:
    (kernel, stride, padding, dilation, out_size, first_channel, channels, ones)."""

    def __init__(self, x_nhwc: np.ndarray, geometry: tuple, ones: int):
        self.x_nhwc, self.geometry, self.ones = x_nhwc, geometry, ones

    def dac(self, parallel: bool, plan, bounds: np.ndarray, want_sq: bool, want_squares: bool, buffers, v0: int, v1: int) -> int:
        if not _pool["started"]:  # the patch kernels' get_thread_id() needs it, even when they run serially
            numba.get_num_threads()
            _pool["started"] = True
        # a scratch row per Numba thread, from this Python thread's workspace: parts of a read run on several
        scratch = workspace.buffer("patch", (numba.config.NUMBA_NUM_THREADS, plan.n_in))
        kernel_fn = patches.dac_patches_into_parallel if parallel else patches.dac_patches_into_serial
        return kernel_fn(self.x_nhwc, *self.geometry, scratch, *_dac_arguments(plan, bounds, want_sq, want_squares, buffers), v0, v1)

    def rows(self, indices: np.ndarray) -> np.ndarray:
        kernel, stride, padding, dilation, out_size, first_channel, channels, ones = self.geometry
        rows = patches.im2col_rows(self.x_nhwc, indices, kernel, stride, padding, dilation, out_size, first_channel, channels)
        return np.concatenate([rows, np.ones((len(rows), ones), np.float32)], axis=1) if ones else rows
