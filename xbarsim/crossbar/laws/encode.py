"""Weights <-> differential conductance pairs (docs/physics.md §1).

Arrays are in crossbar order: ``w_t`` is (n_in, n_out), i.e. the transpose of a torch weight,
and a conductance array is (2, n_in, n_out) with [0] = G+ and [1] = G-, in uS.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .. import threads
from ..grid import TileGrid
from ..jit import parallel_and_serial


def weight_scales(w_t: np.ndarray, grid: TileGrid, mode: str) -> np.ndarray:
    """(P, n_out) float32: the |w| that maps onto g_max - g_min, per row block and column.

    ``column``: abs-max of each column within each tile; ``tile`` (and ``none``, whose devices are
    mapped as aihwkit's conductance converter maps them) : abs-max of each tile; ``layer``: abs-max
    of the whole matrix. An all-zero group gets scale 1.
    """
    n_p, n_q = grid.shape
    absw = np.abs(w_t)
    scales = np.empty((n_p, w_t.shape[1]), np.float32)
    for p in range(n_p):
        rows = slice(int(grid.row_edges[p]), int(grid.row_edges[p + 1]))
        col_max = absw[rows].max(axis=0)
        if mode == "column":
            scales[p] = col_max
        elif mode in ("tile", "none"):
            for q in range(n_q):
                cols = slice(int(grid.col_edges[q]), int(grid.col_edges[q + 1]))
                scales[p, cols] = col_max[cols].max()
        elif mode == "layer":
            scales[p] = absw.max()
        else:
            raise ValueError(f"unknown weight_scale {mode!r}; choose column, tile, layer or none")
    scales[scales == 0] = 1.0
    return scales


def expand_rows(per_block: np.ndarray, grid: TileGrid) -> np.ndarray:
    """(P, ...) -> (n_in, ...): repeat each row block's values over its rows."""
    return np.repeat(per_block, np.diff(grid.row_edges), axis=0)


def encode(w_t: np.ndarray, scales: np.ndarray, grid: TileGrid, g_min: float, g_max: float) -> np.ndarray:
    """(2, n_in, n_out) float32 target conductances, uS:
    G+ = g_min + (g_max - g_min) * max(w, 0) / scale, G- likewise with max(-w, 0) (in float64)."""
    w_t = np.ascontiguousarray(w_t, np.float32)
    g = np.empty((2,) + w_t.shape, np.float32)
    block_of_row = np.repeat(np.arange(grid.shape[0]), np.diff(grid.row_edges))
    fill = _encode_parallel if threads.use_parallel(w_t.size) else _encode_serial
    fill(w_t, np.ascontiguousarray(scales, np.float32), block_of_row, float(g_min), float(g_max - g_min), g)
    return g


def _encode_into(w_t, scales, block_of_row, g_min, span, out):
    """out[:, i, j] = the pair of target conductances of w_t[i, j] (scale of row i's block)."""
    n_in, n_out = w_t.shape
    for i in prange(n_in):
        p = block_of_row[i]
        for j in range(n_out):
            w = np.float64(w_t[i, j]) / np.float64(scales[p, j])
            out[0, i, j] = np.float32(g_min + span * (w if w > 0.0 else 0.0))
            out[1, i, j] = np.float32(g_min + span * (-w if w < 0.0 else 0.0))


_encode_parallel, _encode_serial = parallel_and_serial(_encode_into)


def normalized_difference(g: np.ndarray, g_min: float, g_max: float, out: np.ndarray | None = None) -> np.ndarray:
    """(n_in, n_out) float32 (G+ - G-) / (g_max - g_min): the weight a tile computes with,
    in units of its scale (written into ``out``, a NumPy array, when given)."""
    if out is None:
        return (g[0] - g[1]) / np.float32(g_max - g_min)
    np.subtract(g[0], g[1], out=out)
    out /= np.float32(g_max - g_min)
    return out


def decode(g: np.ndarray, scales: np.ndarray, grid: TileGrid, g_min: float, g_max: float) -> np.ndarray:
    """(n_in, n_out) float32 effective weights ``scale * (G+ - G-) / (g_max - g_min)``."""
    return normalized_difference(g, g_min, g_max) * expand_rows(scales, grid)


def signed_targets(g_target: np.ndarray, g_min: float) -> np.ndarray:
    """(2, n_in, n_out) target conductances -> (n_in, n_out) float32, one number per pair: G+ where
    G- is g_min, else -G- (mapping puts g_min on one side of every pair; ValueError otherwise)."""
    g_target = np.ascontiguousarray(g_target, np.float32)
    out = np.empty(g_target.shape[1:], np.float32)
    pack = _pack_parallel if threads.use_parallel(out.size) else _pack_serial
    if pack(g_target.reshape(2, -1), np.float32(g_min), out.reshape(-1)):
        raise ValueError("target conductances must hold g_min on one side of every device pair (as mapping writes them)")
    return out


def _pack_into(g, floor, out):
    """out[k] = g[0, k] if g[1, k] == floor else -g[1, k]; returns how many pairs hold floor on neither side."""
    bad = 0
    for k in prange(out.shape[0]):
        g_pos, g_neg = g[0, k], g[1, k]
        if not (g_pos == floor or g_neg == floor):
            bad += 1
        out[k] = g_pos if g_neg == floor else -g_neg
    return bad


_pack_parallel, _pack_serial = parallel_and_serial(_pack_into)


def targets_from_signed(targets: np.ndarray, g_min: float) -> np.ndarray:
    """The inverse of ``signed_targets``: (2, n_in, n_out) float32 (a target >= 0 is G+, else -G-)."""
    targets = np.ascontiguousarray(targets, np.float32)
    g = np.empty((2,) + targets.shape, np.float32)
    unpack = _unpack_parallel if threads.use_parallel(targets.size) else _unpack_serial
    unpack(targets.reshape(-1), np.float32(g_min), g.reshape(2, -1))
    return g


def _unpack_into(targets, floor, out):
    for k in prange(targets.shape[0]):
        t = targets[k]
        positive = t >= 0
        out[0, k] = t if positive else floor
        out[1, k] = floor if positive else -t


_unpack_parallel, _unpack_serial = parallel_and_serial(_unpack_into)
