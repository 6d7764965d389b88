"""Wire resistance (IR drop), first-order model: the conductances as the ADCs see them (docs/physics.md).

Geometry as ``irdrop_solver`` (the exact truth): word line i driven at its column-0 end, bit line j read at its
last-row end, one segment of r ohm before every cell of a line and after the last one. An array with ohmic
devices and voltage inputs is linear, so whatever r, its outputs are ``V @ M`` with M an effective conductance
matrix. To first order in r (zeroth-order cell currents G_ij V_i flowing through the wires):

    word-line voltage  u_ij = V_i (1 - r A_ij),  A_ij = sum_j' G_ij' (min(j, j') + 1)
    bit-line voltage   v_ij = r sum_i' G_i'j V_i' (n - max(i, i'))
    output             I_j  = sum_i G_ij (u_ij - v_ij) = sum_i V_i G_ij (1 - r (A_ij + B_ij)),
                       B_ij = sum_i' G_i'j (n - max(i, i'))

with n rows, indices from 0, r G in ohm x siemens. The attenuation r (A_ij + B_ij) of device (i, j) depends on
its position and on the currents of the devices that share its wires; it does not depend on the input. We use
the equivalent ``G_ij / (1 + r (A_ij + B_ij))``: the same first order, exact for a single device, and never
negative. Error O(delta^2) with delta = max_ij r (A_ij + B_ij) (``max_attenuation``): below ~0.1 delta^2 of the
full-scale output against the exact solver, so valid while delta <~ 0.3 (error < 1%).

Each tile is its own array; a block smaller than the tile sits in the corner nearest the drivers and the
outputs, the unused devices off, so its lines are as long as the block. G+ and G- sit on two arrays.
"""

from __future__ import annotations

import warnings

import numpy as np
from numba import njit

from ..grid import TileGrid
from ..jit import JIT_OPTIONS

_SIEMENS_PER_US = 1e-6


@njit(**JIT_OPTIONS)
def _sums_along_wires(g: np.ndarray, out: np.ndarray) -> None:
    """out (rows, cols) float64 = A + B of one array g (rows, cols) (module doc), in uS: two passes, prefix sums.

    A_ij = C1_ij + (j + 1) (T_i - C0_ij) with the row prefix sums C0 = sum_{j' <= j} G_ij', C1 = sum_{j' <= j}
    G_ij' (j' + 1) and row total T_i; B_ij = (n - i) D0_ij + W_j - D1_ij with the column prefix sums
    D0 = sum_{i' <= i} G_i'j, D1 = sum_{i' <= i} G_i'j (n - i') and W_j = D1 at i = n - 1.
    """
    n, m = g.shape
    for i in range(n):
        total = 0.0
        for j in range(m):
            total += g[i, j]
        c0 = 0.0
        c1 = 0.0
        for j in range(m):
            gij = np.float64(g[i, j])
            c0 += gij
            c1 += gij * (j + 1)
            out[i, j] = c1 + (j + 1) * (total - c0)
    d0 = np.zeros(m)
    d1 = np.zeros(m)
    w = np.zeros(m)
    for i in range(n):
        for j in range(m):
            w[j] += np.float64(g[i, j]) * (n - i)
    for i in range(n):
        to_end = n - i
        for j in range(m):
            gij = np.float64(g[i, j])
            d0[j] += gij
            d1[j] += gij * to_end
            out[i, j] += to_end * d0[j] + w[j] - d1[j]


def wire_sums(g_us: np.ndarray) -> np.ndarray:
    """A + B of every device of one array (rows, cols), float64, uS (see the module doc)."""
    g = np.ascontiguousarray(g_us, np.float32)
    sums = np.empty(g.shape, np.float64)
    _sums_along_wires(g, sums)
    return sums


def attenuation(g_us: np.ndarray, r_ohm: float, sums=wire_sums) -> np.ndarray:
    """r (A + B) of every device of one array (rows, cols), float64, dimensionless (see the module doc); ``sums``:
    ``wire_sums`` on the arrays' backend (``lawops``)."""
    return (r_ohm * _SIEMENS_PER_US) * sums(g_us)


def array_conductances(g_us: np.ndarray, r_ohm: float) -> np.ndarray:
    """(rows, cols) float64: one array's conductances as its outputs see them, G / (1 + r (A + B)), uS."""
    return _attenuated(g_us, attenuation(g_us, r_ohm))


def _attenuated(g_us: np.ndarray, attenuated: np.ndarray) -> np.ndarray:
    """G / (1 + r (A + B)) from the attenuations r (A + B) (float64), uS: float64 for a NumPy array (any float32 tensor
    becomes float64 by the division)."""
    return (np.asarray(g_us, np.float64) if isinstance(g_us, np.ndarray) else g_us) / (1.0 + attenuated)


VALID_ATTENUATION = 0.3  # delta up to which the first-order model stays within ~1% of full scale (docs/physics.md §10)


class WireModelWarning(UserWarning):
    """The wires attenuate some device beyond the first-order model's range: its outputs are approximate."""


def _tiles(grid: TileGrid):
    """(side, input slice, output slice) of every array: G+ and G- of every tile."""
    n_p, n_q = grid.shape
    for side in range(2):
        for p in range(n_p):
            for q in range(n_q):
                yield (side, *grid.tile_slices(p, q))


def seen_conductances(g: np.ndarray, grid: TileGrid, r_ohm: float, ops=None) -> np.ndarray:
    """(2, n_in, n_out) float32: G+ and G- (uS) of every tile of ``grid`` as read through wires of r_ohm per
    segment. Call only with r_ohm > 0 (at 0 the conductances are what they are). ``ops``: the arrays' operations
    (``lawops``; None: NumPy's)."""
    seen = np.empty(g.shape, np.float32) if ops is None else ops.zeros(g.shape, np.float32)
    delta = 0.0
    for side, rows, cols in _tiles(grid):
        tile = g[side, rows, cols]
        attenuated = attenuation(tile, r_ohm, wire_sums if ops is None else ops.wire_sums)
        delta = max(delta, float(attenuated.max()))
        seen[side, rows, cols] = _attenuated(tile, attenuated)
    if delta > VALID_ATTENUATION:
        warnings.warn(f"wire resistance {r_ohm:g} ohm per segment attenuates some device by delta = {delta:.2f} on "
                      f"blocks of up to {int(np.diff(grid.row_edges).max())}x{int(np.diff(grid.col_edges).max())}, beyond the first-order model's range "
                      f"(delta <= {VALID_ATTENUATION}: error ~0.1 delta^2 of full scale); smaller tiles keep it valid",
                      WireModelWarning, stacklevel=2)  # fmt: skip
    return seen


def max_attenuation(g: np.ndarray, grid: TileGrid, r_ohm: float) -> float:
    """delta: the largest first-order attenuation r (A + B) of any device of any tile (validity: delta << 1)."""
    return max(float(attenuation(g[side, rows, cols], r_ohm).max()) for side, rows, cols in _tiles(grid))
