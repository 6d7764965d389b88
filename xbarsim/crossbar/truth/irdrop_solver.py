"""Exact nodal analysis of one crossbar array with wire resistance (docs/physics.md, "Wire resistance").

The truth for the tests of the fast model (``irdrop``); meant for small arrays (it solves a sparse system of
2 * rows * cols unknowns). Geometry, for a conductance array G (rows x cols, uS):

- word line i is driven at its column-0 end by the input voltage V_i, through one wire segment to cell (i, 0)
  and one segment between neighbouring cells (i, j) -> (i, j + 1): ``cols`` segments;
- bit line j is held at virtual ground at its row-(rows - 1) end, one segment below cell (rows - 1, j) and one
  between neighbouring cells (i, j) -> (i + 1, j): ``rows`` segments (the last input is nearest the output);
- the device (i, j) joins word-line node u_ij and bit-line node v_ij.

Every wire segment has resistance r (ohm). The output current of column j is the current of its last segment,
v_(rows-1, j) / r; with r = 0 it is sum_i V_i G_ij. The network is linear, so outputs = V @ M for an effective
conductance matrix M (``effective_conductances``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

_US_PER_SIEMENS = 1e6


def _check(g_us: np.ndarray, r_ohm: float) -> np.ndarray:
    g = np.asarray(g_us, np.float64)
    if g.ndim != 2 or g.size == 0 or not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError(f"conductances must be a non-empty 2-D array of finite values >= 0 uS, got shape {np.shape(g_us)}")
    if not np.isfinite(r_ohm) or r_ohm < 0:
        raise ValueError(f"wire resistance must be finite and >= 0 ohm, got {r_ohm}")
    return g


def nodal_system(g_us: np.ndarray, r_ohm: float) -> tuple[sp.csc_matrix, sp.csr_matrix]:
    """The nodal equations ``Y @ nodes = S @ V`` of one array, in uS, for r_ohm > 0.

    nodes: (2 * rows * cols,) word-line voltages u (index i * cols + j), then bit-line voltages v (offset
    rows * cols). Returns Y (nodes x nodes) and S (nodes x rows): the drivers' injections per unit input voltage.
    """
    g = _check(g_us, r_ohm)
    if r_ohm <= 0:
        raise ValueError("the nodal system needs a wire resistance > 0 (at 0 the outputs are V @ G)")
    n, m = g.shape
    gw = _US_PER_SIEMENS / r_ohm  # one wire segment's conductance, uS
    u = np.arange(n * m).reshape(n, m)
    v = u + n * m
    a_idx, b_idx, conductance = [], [], []

    def branch(a: np.ndarray, b: np.ndarray, c: np.ndarray | float) -> None:
        a_idx.append(a.ravel())
        b_idx.append(b.ravel())
        conductance.append(np.broadcast_to(c, a.shape).ravel())

    branch(u[:, :-1], u[:, 1:], gw)  # word-line segments between cells
    branch(v[:-1, :], v[1:, :], gw)  # bit-line segments between cells
    branch(u, v, g)  # the devices
    a, b, c = (np.concatenate(part) for part in (a_idx, b_idx, conductance))
    size = 2 * n * m
    diagonal = np.bincount(a, c, size) + np.bincount(b, c, size)
    diagonal[u[:, 0]] += gw  # driver -> first cell of each word line
    diagonal[v[-1, :]] += gw  # last cell of each bit line -> virtual ground
    y = sp.coo_matrix((np.concatenate([-c, -c, diagonal]),
                       (np.concatenate([a, b, np.arange(size)]), np.concatenate([b, a, np.arange(size)]))),
                      shape=(size, size)).tocsc()  # fmt: skip
    s = sp.csr_matrix((np.full(n, gw), (u[:, 0], np.arange(n))), shape=(size, n))
    return y, s


def output_currents(g_us: np.ndarray, v_in: np.ndarray, r_ohm: float) -> np.ndarray:
    """Output currents (B, cols) of one array for input voltages v_in (B, rows): V * uS = uA per volt."""
    g = _check(g_us, r_ohm)
    v = np.atleast_2d(np.asarray(v_in, np.float64))
    if v.shape[1] != g.shape[0]:
        raise ValueError(f"inputs must have {g.shape[0]} columns (one per word line), got shape {v.shape}")
    if r_ohm == 0:
        return v @ g
    n, m = g.shape
    y, s = nodal_system(g, r_ohm)
    nodes = spla.splu(y).solve(np.asarray((s @ v.T)))  # (2 n m, B)
    last_bit_nodes = n * m + (n - 1) * m + np.arange(m)
    return (nodes[last_bit_nodes] * (_US_PER_SIEMENS / r_ohm)).T


def effective_conductances(g_us: np.ndarray, r_ohm: float) -> np.ndarray:
    """(rows, cols) M with output currents = V @ M exactly: the array as the ADCs see it, uS."""
    g = _check(g_us, r_ohm)
    return output_currents(g, np.eye(g.shape[0]), r_ohm)


def differential_outputs(g_pos_us: np.ndarray, g_neg_us: np.ndarray, v_in: np.ndarray, r_ohm: float) -> np.ndarray:
    """I+ - I- (B, cols): a differential pair laid out as two arrays, each with its own word-line drivers
    (the same input voltages) and bit lines, so the two circuits are independent."""
    return output_currents(g_pos_us, v_in, r_ohm) - output_currents(g_neg_us, v_in, r_ohm)
