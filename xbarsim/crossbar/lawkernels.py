"""Numba kernels of the device laws in ``device``, for one piece of device pairs, bit for bit.

``device`` states each law as a NumPy expression (the definition, also used by hardware-aware
training). Evaluated that way, a piece streams a dozen float64 temporaries through the cache; these
kernels fuse the arithmetic into one pass instead and leave only the transcendental functions
(log, pow) to NumPy's own ufuncs, called on a compacted buffer of the devices that need them: Numba's
log and pow differ from NumPy's in the last bit for a few percent of the values, which would change
the chip a seed gives. Every other operation is the same IEEE operation, in the same order and the
same precision (float32 or float64) as the NumPy expression (no fast-math, no contraction), so the
result is the same bit for bit (``tests/test_lawkernels.py`` checks it law by law).

A piece of (2, m) devices, [0] = G+ and [1] = G-, is passed as the tuple of its two rows (``rows``): a
(2, m) column slice of a larger array would reach Numba as a non-contiguous array, whose loops run
several times slower. Device d of a piece is ``(d // m, d % m)``, and the compacted buffers list the
selected devices in that order. All kernels are serial and release the
GIL (``pieces.map_pairs`` runs them on several Python threads).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .jit import JIT_OPTIONS
from .rng import normal_pair

WRITE_NONE, WRITE_ABSOLUTE, WRITE_PROPORTIONAL, WRITE_PCM = 0, 1, 2, 3
READ_ADDITIVE, READ_PROPORTIONAL, READ_PCM = 0, 1, 2

_kernel = njit(nogil=True, **JIT_OPTIONS)


def rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A (2, m) piece as the tuple of its rows (each contiguous when the piece is a column slice of a C array)."""
    return a[0], a[1]


@_kernel
def _maximum(a, b):
    """np.maximum of two floats (the first one when they compare equal, NaN propagates)."""
    return a if (a >= b or a != a) else b


@_kernel
def _minimum(a, b):
    """np.minimum of two floats (the first one when they compare equal, NaN propagates)."""
    return a if (a <= b or a != a) else b


@_kernel
def _device(d, m):
    """(side, column) of device d of a (2, m) piece (without an integer division)."""
    side = 1 if d >= m else 0
    return side, d - side * m


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
def drifting(g_prog, stuck, g_max, index, log_arg):
    """The devices a power-law drift moves (not stuck, G != 0: a factor in [0, 1] keeps 0 at 0):
    their numbers d into ``index`` and ``max(G / g_max, 1e-7)`` (float64, the argument of the PCM
    law's log) into ``log_arg``, in order. Returns how many."""
    m = g_prog[0].shape[0]
    count = 0
    for side in range(2):
        for k in range(m):
            g = g_prog[side][k]
            if stuck[side][k] == 0 and g != 0:
                index[count] = side * m + k
                log_arg[count] = _maximum(np.float64(g) / g_max, 1e-7)
                count += 1
    return count


@_kernel
def pcm_negative_exponents(log_gh, z, index, scale, out):
    """out[c] = -nu of selected device index[c] under the PCM law (``device.drift_factor``):
    nu = scale |mu + sd z|, mu and sd clipped linear functions of log_gh[c] (``pcm_drift_moments``)."""
    m = z[0].shape[0]
    for c in range(index.shape[0]):
        side, k = _device(index[c], m)
        lg = log_gh[c]
        mean = _minimum(_maximum(-0.0155 * lg + 0.0244, 0.049), 0.1)
        std = _minimum(_maximum(-0.0125 * lg - 0.0059, 0.008), 0.045)
        out[c] = -(scale * abs(mean + std * np.float64(z[side][k])))


@_kernel
def power_law_negative_exponents(z, index, nu_mean, nu_std, out):
    """out[c] = -max(nu_mean + nu_std z, 0) of selected device index[c] (the power-law drift)."""
    m = z[0].shape[0]
    for c in range(index.shape[0]):
        side, k = _device(index[c], m)
        out[c] = -_maximum(nu_mean + nu_std * np.float64(z[side][k]), 0.0)


@_kernel
def scaled(g_prog, index, factor, out):
    """out (rows of (2, m) float32) = G_prog, with ``float32(G_prog * factor[c])`` at the selected devices index[c]."""
    m = g_prog[0].shape[0]
    out[0][:] = g_prog[0]
    out[1][:] = g_prog[1]
    for c in range(index.shape[0]):
        side, k = _device(index[c], m)
        out[side][k] = np.float32(np.float64(g_prog[side][k]) * factor[c])


@_kernel
def conducting(g, g_prog, g_max, gh):
    """|G_prog| / g_max (float64, the PCM read-noise law's g) of the devices with G != 0 (whose
    G-proportional read-noise terms are not 0) into ``gh``, in order. Returns how many."""
    m = g[0].shape[0]
    count = 0
    for side in range(2):
        for k in range(m):
            if g[side][k] != 0:
                gh[count] = abs(np.float64(g_prog[side][k])) / g_max
                count += 1
    return count


@_kernel
def read_epoch(g, z, kinds, coefs, q_coeffs, q_maxs, time_factors, powers, out):
    """out (rows of (2, m) float32) = ``max(G + std * z, 0)``, std = float32(sqrt(sum of the terms' squares))
    (``device.read_noise_std``), one term per part: additive coef; proportional coef |G|; pcm
    (coef |G|) (q time_factor), q = min(q_coeff / max(g^q_exponent, 1e-3), q_max), with g^q_exponent
    of the k-th device with G != 0 in powers[part, k] (a device with G = 0 has a pcm term of 0)."""
    m = g[0].shape[0]
    count = 0
    for side in range(2):
        for k in range(m):
            gk = g[side][k]
            g64 = np.float64(gk)
            variance = 0.0
            for part in range(kinds.shape[0]):
                if kinds[part] == READ_ADDITIVE:
                    term = coefs[part]
                elif kinds[part] == READ_PROPORTIONAL:
                    term = coefs[part] * abs(g64)
                elif gk != 0:
                    q = _minimum(q_coeffs[part] / _maximum(powers[part, count], 1e-3), q_maxs[part])
                    term = coefs[part] * abs(g64) * (q * time_factors[part])
                else:
                    term = 0.0
                variance += term * term
            if gk != 0:
                count += 1
            std = np.float32(np.sqrt(variance))
            out[side][k] = _maximum(gk + std * z[side][k], np.float32(0.0))
