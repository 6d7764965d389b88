"""Normals of per-read noise: noise stream version 2 (docs/determinism.md, "Per-read normals").

Every read-time draw (read and output noise, every device's read noise, bound-management
re-reads, drift compensation's probe reads) comes from here. Programming, faults, drift and
per-epoch read noise keep ``rng``'s version 1 generator, so a chip file still loads to the same
chip. The counter hash is the same as version 1 (``rng.hash_block``: splitmix64's finalizer of
``key + counter * golden``, its high 32 bits for the radius, its low 32 for the angle);
Box-Muller runs on float32 with fused multiply-adds (``fma``, one rounding each) in the
order ``normal_pair_from_bits`` writes, about 1.2x faster per normal than version 1's separate
multiplies and adds. Every step is an integer or IEEE float32 operation (fma included), so
``truth/reference.py`` (NumPy, with fma correctly rounded through float64) and a GPU backend
reproduce the draws bit for bit.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .rng import _LN2_HI, _LN2_LO, box_muller_inputs, hash_block, log_reduced, rotated

STREAM_VERSION = 2

_F = np.float32
# Cephes logf's polynomial on [sqrt(1/2) - 1, sqrt(2) - 1], highest power first, and sinf / cosf on [-pi/4, pi/4]
LOG_COEFFICIENTS = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
                    -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)  # fmt: skip
SIN_COEFFICIENTS = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
COS_COEFFICIENTS = (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)
_L = tuple(_F(c) for c in LOG_COEFFICIENTS)
_S = tuple(_F(c) for c in SIN_COEFFICIENTS)
_C = tuple(_F(c) for c in COS_COEFFICIENTS)


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c in float32 with one rounding (LLVM's fma: one instruction where the CPU has it)."""
    if not (a == types.float32 and b == types.float32 and c == types.float32):
        return None

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        function = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(function, args)

    return types.float32(types.float32, types.float32, types.float32), codegen


@njit(inline="always", error_model="numpy", cache=True)
def log_f32(u):
    """Natural log of a positive, finite float32: Cephes logf's reduction and polynomial, the
    polynomial and the exponent's terms as fused multiply-adds."""
    fe, x = log_reduced(u)
    z = x * x
    p = _L[0]
    p = fma(p, x, _L[1])
    p = fma(p, x, _L[2])
    p = fma(p, x, _L[3])
    p = fma(p, x, _L[4])
    p = fma(p, x, _L[5])
    p = fma(p, x, _L[6])
    p = fma(p, x, _L[7])
    p = fma(p, x, _L[8])
    y = p * x * z
    y = fma(fe, _LN2_LO, y)
    y = fma(_F(-0.5), z, y)
    return fma(fe, _LN2_HI, x + y)


@njit(inline="always", error_model="numpy", cache=True)
def normal_pair_from_bits(high, low):
    """Two independent standard normals (float32) from the high and low 32 bits (uint32) of a hash:
    radius sqrt(-2 ln u), u = (high >> 1 + 1/2) 2^-31 (so |z| <= 6.66); angle from low's top 2 bits
    (the quadrant) and the next 24 (the offset in [-pi/4, pi/4))."""
    u, a, quadrant = box_muller_inputs(high, low)
    r = np.sqrt(_F(-2.0) * log_f32(u))
    z = a * a
    s = fma(a * z, fma(z, fma(z, _S[0], _S[1]), _S[2]), a)
    c = fma(z * z, fma(z, fma(z, _C[0], _C[1]), _C[2]), fma(_F(-0.5), z, _F(1.0)))
    return rotated(r, c, s, quadrant)


@njit(inline="always", error_model="numpy", cache=True)
def normal_pairs_into(key, first, z_first, z_second, high, low):
    """z_first[k], z_second[k] = the normal pair of (key, counter first + k) for k < len(z_first)
    (float32); high, low: uint32 scratch of at least that length. The hashes first, then
    Box-Muller, each loop on its own lanes (``rng.normal_pairs_into`` says why)."""
    n = z_first.shape[0]
    hash_block(key, first, n, high, low)
    for k in range(n):
        z_first[k], z_second[k] = normal_pair_from_bits(high[k], low[k])


@njit(nogil=True, error_model="numpy", cache=True)
def _fill(key, first, out, scratch):
    n = out.shape[1]
    chunk = scratch.shape[1]
    for k0 in range(0, n, chunk):
        k1 = min(n, k0 + chunk)
        normal_pairs_into(key, first + np.uint64(k0), out[0, k0:k1], out[1, k0:k1], scratch[0, : k1 - k0], scratch[1, : k1 - k0])


def normals(key: np.uint64, n_pairs: int, first: int = 0) -> np.ndarray:
    """(2, n_pairs) float32: column k holds the pair of counter first + k of stream ``key``."""
    out = np.empty((2, n_pairs), np.float32)
    _fill(np.uint64(key), np.uint64(first), out, np.empty((2, 1024), np.uint32))
    return out
