"""Numba kernels of the device laws in ``device``, for one piece of device pairs, bit for bit.

``device`` states each law as a NumPy expression (the definition, also used by hardware-aware
training). Evaluated that way, a piece streams a dozen float64 temporaries through the cache; these
kernels fuse the arithmetic into a few passes instead and leave only the transcendental functions
(log, pow, exp) to NumPy's own ufuncs, called on a piece-sized float64 buffer: Numba's
log and pow differ from NumPy's in the last bit for a few percent of the values, which would change
the chip a seed gives. Every other operation is the same IEEE operation, in the same order and the
same precision (float32 or float64) as the NumPy expression (no fast-math, no contraction), so the
result is the same bit for bit (``tests/test_lawkernels.py`` checks it law by law).

A piece of (2, m) devices, [0] = G+ and [1] = G-, is passed as the tuple of its two rows (``rows``): a
(2, m) column slice of a larger array would reach Numba as a non-contiguous array, whose loops run
several times slower. Device d of a piece is ``(d // m, d % m)`` in the flat (2m,) float64 buffers.
All kernels are serial and release the
GIL (``pieces.map_pairs`` runs them on several Python threads).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..jit import JIT_OPTIONS
from .rng import normal_pair

WRITE_NONE, WRITE_ABSOLUTE, WRITE_PROPORTIONAL, WRITE_PCM = 0, 1, 2, 3
READ_ADDITIVE, READ_PROPORTIONAL, READ_PCM = 0, 1, 2

_kernel = njit(nogil=True, **JIT_OPTIONS)


def rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A (2, m) piece as the tuple of its rows (each contiguous when the piece is a column slice of a C array)."""
    return a[0], a[1]


_helper = njit(inline="always", **JIT_OPTIONS)  # inlined: no dispatcher of its own to load from the cache


@_helper
def _maximum(a, b):
    """np.maximum of two floats (the first one when they compare equal, NaN propagates)."""
    return a if (a >= b or a != a) else b


@_helper
def _minimum(a, b):
    """np.minimum of two floats (the first one when they compare equal, NaN propagates)."""
    return a if (a <= b or a != a) else b


@_kernel
def written(g_target, kind, c0, c1, c2, scale, g_max, key, first, out):
    """out (the rows of a (2, m) float32 piece): ``max(G_target + float32(std * z), 0)``, std of the write-noise law
    ``kind`` (``device.write_noise_std``: absolute c0; proportional c0 |G|; pcm
    scale * max(c0 + c1 g + c2 g^2, 0), g = G / g_max) and z the pair's write normals (counter
    first + column)."""
    m = g_target[0].shape[0]
    for k in range(m):
        z_pos, z_neg = normal_pair(key, first + np.uint64(k))
        for side in range(2):
            target = g_target[side][k]
            g = np.float64(target)
            if kind == WRITE_ABSOLUTE:
                std = c0
            elif kind == WRITE_PROPORTIONAL:
                std = c0 * abs(g)
            else:
                gh = g / g_max
                std = scale * _maximum(c0 + c1 * gh + c2 * gh * gh, 0.0)
            z = z_pos if side == 0 else z_neg
            out[side][k] = _maximum(target + np.float32(std * np.float64(z)), np.float32(0.0))


@_kernel
def pcm_log_arguments(g_prog, g_max, out):
    """out (2m,) float64 = max(G / g_max, 1e-7) of every device: the argument of the PCM drift law's log."""
    m = g_prog[0].shape[0]
    for side in range(2):
        row = g_prog[side]
        for k in range(m):
            out[side * m + k] = _maximum(np.float64(row[k]) / g_max, 1e-7)


@_kernel
def pcm_negative_exponents(log_gh, z, scale, out):
    """out (2m,) = -nu of every device under the PCM drift law (``device.drift_factor``):
    nu = scale |mu + sd z|, mu and sd clipped linear functions of log_gh (``pcm_drift_moments``)."""
    m = z[0].shape[0]
    for side in range(2):
        row = z[side]
        for k in range(m):
            lg = log_gh[side * m + k]
            # builtin min/max: the same as np.clip for finite values and bounds that are not 0 (and faster)
            mean = min(max(-0.0155 * lg + 0.0244, 0.049), 0.1)
            std = min(max(-0.0125 * lg - 0.0059, 0.008), 0.045)
            out[side * m + k] = -(scale * abs(mean + std * np.float64(row[k])))


@_kernel
def power_law_negative_exponents(z, nu_mean, nu_std, out):
    """out (2m,) = -max(nu_mean + nu_std z, 0) of every device (the power-law drift)."""
    m = z[0].shape[0]
    for side in range(2):
        row = z[side]
        for k in range(m):
            out[side * m + k] = -_maximum(nu_mean + nu_std * np.float64(row[k]), 0.0)


@_kernel
def drifted(g_prog, stuck, factor, out):
    """out (rows of (2, m) float32) = float32(G_prog * factor), factor (2m,) float64; G_prog where stuck."""
    m = g_prog[0].shape[0]
    for side in range(2):
        g, s, o = g_prog[side], stuck[side], out[side]
        for k in range(m):
            o[k] = g[k] if s[k] != 0 else np.float32(np.float64(g[k]) * factor[side * m + k])


@_kernel
def pcm_read_g(g_prog, g_max, out):
    """out (2m,) float64 = |G_prog| / g_max of every device (the PCM read-noise law's g), with 1 in place
    of 0: NumPy's pow takes a slow path for every vector of 0s (3x slower on a piece with 25% at 0),
    so the power of 0 is taken once (``add_read_variance``'s zero_power)."""
    m = g_prog[0].shape[0]
    for side in range(2):
        row = g_prog[side]
        for k in range(m):
            g = abs(np.float64(row[k])) / g_max
            out[side * m + k] = g if g != 0 else 1.0


@_kernel
def add_read_variance(g, g_prog, kind, coef, q_coeff, q_max, time_factor, power, zero_power, variance):
    """variance (2m,) float64 += the square of one read-noise term of every device (``device._term_std``):
    additive coef; proportional coef |G|; pcm (coef |G|) (q time_factor),
    q = min(q_coeff / max(p, 1e-3), q_max), p = g^q_exponent: power (2m,) (``pcm_read_g``'s powers),
    zero_power where G_prog is 0 (pcm only)."""
    m = g[0].shape[0]
    for side in range(2):
        row, programmed = g[side], g_prog[side]
        for k in range(m):
            d = side * m + k
            if kind == READ_ADDITIVE:
                term = coef
            elif kind == READ_PROPORTIONAL:
                term = coef * abs(np.float64(row[k]))
            else:
                p = power[d] if programmed[k] != 0 else zero_power
                q = _minimum(q_coeff / _maximum(p, 1e-3), q_max)
                term = coef * abs(np.float64(row[k])) * (q * time_factor)
            variance[d] += term * term


@_kernel
def read_epoch(g, z, variance, out):
    """out (rows of (2, m) float32) = max(G + float32(sqrt(variance)) z, 0)."""
    m = g[0].shape[0]
    for side in range(2):
        gs, zs, o = g[side], z[side], out[side]
        for k in range(m):
            std = np.float32(np.sqrt(variance[side * m + k]))
            o[k] = _maximum(gs[k] + std * zs[k], np.float32(0.0))
