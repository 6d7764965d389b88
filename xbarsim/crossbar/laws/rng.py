"""Counter-based random numbers: the same (key, counter) always gives the same draw (noise stream
version 1: programming, faults, drift and per-epoch read noise; per-read noise draws its normals
from ``readnormals``, version 2, from the same hash).

Every random number in xbarsim is a pure function of a 64-bit stream key and a counter, so the
draws do not depend on thread count, batch splits or the order in which tiles run
(docs/determinism.md). One splitmix64 hash of ``key + counter * golden`` gives 64 random bits, which
become a *pair* of standard normals (Box–Muller, 32 bits for the radius, 32 for the angle) or a
pair of uniforms. log/sin/cos are float32 polynomials (Cephes) on reduced ranges, without
branches, so LLVM vectorises the loops that call them; `normal_pairs_into` hashes a block of
counters first and then runs Box-Muller on 32-bit lanes only (~1.3 ns per normal on one thread here).
The radius uses 31 bits, which caps |z| at sqrt(2 * 32 ln 2) = 6.66 sigma (probability 2.7e-11).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ..jit import parallel_and_serial

GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1

# Purposes of a stream: a stream key is derived from (seed, purpose, index).
PURPOSE_WRITE = 1  # programming (write) error, per device
PURPOSE_FAULT = 2  # stuck-at faults, per device
PURPOSE_DRIFT = 3  # drift coefficients, per device
PURPOSE_READ = 4  # read (+ output) noise per output, index = row block
PURPOSE_READ_DEVICE = 5  # read noise per device (the honest path), index = row block
PURPOSE_OUTPUT = 6  # output noise per output on the per-device path, index = row block
PURPOSE_MATRIX = 7  # a chip's seed -> the seed of its k-th weight matrix, index = k
PURPOSE_PROBE = 8  # the read noise of a drift-compensation probe read, index = round(t in s)
PURPOSE_PROBE_INPUT = 9  # the drift-compensation probe inputs
PURPOSE_READ_EPOCH = 10  # per-epoch read noise per device, index = read epoch
PURPOSE_BM_READ = 11  # read + output noise of bound-management re-reads, per output, index = row block
PURPOSE_BM_DEVICE = 12  # device read noise of bound-management re-reads (per-device path), index = row block
PURPOSE_VERIFY_PULSE = 13  # program-and-verify: each pulse's step spread, index = device of the unit cell
PURPOSE_VERIFY_READ = 14  # program-and-verify: each verify read's noise, index = device of the unit cell

_GOLDEN_U = np.uint64(GOLDEN)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S33 = np.uint64(33)
_LOW32 = np.uint64(0xFFFFFFFF)
_LOW30 = np.uint32(0x3FFFFFFF)
_MANT = np.uint32(0x007FFFFF)
_ONE_BITS = np.uint32(0x3F800000)

_F = np.float32
_TWO_M31 = _F(2.0**-31)
_TWO_M24 = _F(2.0**-24)
_SQRT_HALF = _F(0.70710678118654752)
_LN2_HI = _F(0.693359375)
_LN2_LO = _F(-2.12194440e-4)
_HALF_PI = _F(np.pi / 2)


def _mix64_py(z: int) -> int:
    """splitmix64's finalizer on a Python int (mod 2**64)."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_key(seed: int, purpose: int, index: int = 0) -> np.uint64:
    """The 64-bit key of the stream for (seed, purpose, index); any ints >= 0."""
    if seed < 0 or purpose < 0 or index < 0:
        raise ValueError(f"stream keys need seed, purpose and index >= 0, got {seed}, {purpose}, {index}")
    key = _mix64_py(seed + GOLDEN)
    key = _mix64_py(key ^ ((purpose * GOLDEN) & _MASK64))
    key = _mix64_py(key ^ ((index * 0xD1B54A32D192ED03) & _MASK64))
    return np.uint64(key)


@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the low 32 bits of an integer."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def _bits_from_f32(typingctx, value):
    """The IEEE bits of a float32, as uint32."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@njit(inline="always", error_model="numpy", cache=True)
def mix64(z):
    """splitmix64's finalizer of a uint64."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always", error_model="numpy", cache=True)
def hash64(key, counter):
    """64 random bits for (key, counter); both uint64."""
    return mix64(key + counter * _GOLDEN_U)


@njit(inline="always", error_model="numpy", cache=True)
def log_reduced(u):
    """Cephes logf's reduction of a positive, finite float32: u = 2^fe (1 + x) with 1 + x in
    [sqrt(1/2), sqrt(2)); returns (fe, x), float32 (fe exact)."""
    bits = _bits_from_f32(u)
    # the exponent as a float32 (exact): Numba types int32 arithmetic as int64, and 64-bit lanes
    # next to float32 ones make LLVM mix 512- and 256-bit vectors (half the float throughput)
    fe = _F(np.int32(bits >> np.uint32(23))) - _F(127.0)
    m = _f32_from_bits((bits & _MANT) | _ONE_BITS)  # mantissa in [1, 2)
    big = m > _F(2.0) * _SQRT_HALF
    m = m * _F(0.5) if big else m
    fe = fe + _F(1.0) if big else fe
    return fe, m - _F(1.0)


@njit(inline="always", error_model="numpy", cache=True)
def log_f32(u):
    """Natural log of a positive, finite float32 (Cephes logf, ~1 ulp)."""
    fe, x = log_reduced(u)
    z = x * x
    y = _F(7.0376836292e-2)
    y = y * x - _F(1.1514610310e-1)
    y = y * x + _F(1.1676998740e-1)
    y = y * x - _F(1.2420140846e-1)
    y = y * x + _F(1.4249322787e-1)
    y = y * x - _F(1.6668057665e-1)
    y = y * x + _F(2.0000714765e-1)
    y = y * x - _F(2.4999993993e-1)
    y = y * x + _F(3.3333331174e-1)
    y = y * x * z
    y = y + fe * _LN2_LO
    y = y - _F(0.5) * z
    return x + y + fe * _LN2_HI


@njit(inline="always", error_model="numpy", cache=True)
def box_muller_inputs(high, low):
    """(u, a, quadrant) of a hash's high and low 32 bits (uint32): u in (0, 1), never 0, from high's
    top 31 bits (signed int -> float vectorises); the angle's offset a in [-pi/4, pi/4) from low's
    bits 6-29 and its quadrant from low's top 2 bits. float32, float32, uint32."""
    u = (_F(np.int32(high >> np.uint32(1))) + _F(0.5)) * _TWO_M31
    a = (_F(np.int32((low & _LOW30) >> np.uint32(6))) * _TWO_M24 - _F(0.5)) * _HALF_PI
    return u, a, low >> np.uint32(30)


@njit(inline="always", error_model="numpy", cache=True)
def rotated(r, c, s, quadrant):
    """(r cos, r sin) of the angle quadrant * pi/2 + a, from c = cos a and s = sin a (float32)."""
    swap = (quadrant & np.uint32(1)) == np.uint32(1)
    first = s if swap else c
    second = c if swap else s
    first = -first if (quadrant == np.uint32(1) or quadrant == np.uint32(2)) else first
    second = -second if quadrant >= np.uint32(2) else second
    return r * first, r * second


@njit(inline="always", error_model="numpy", cache=True)
def normal_pair_from_bits(high, low):
    """Two independent standard normals (float32) from the high and low 32 bits (uint32) of a hash."""
    u, a, quadrant = box_muller_inputs(high, low)
    r = np.sqrt(_F(-2.0) * log_f32(u))
    z = a * a
    s = a + a * z * (_F(-1.6666654611e-1) + z * (_F(8.3321608736e-3) + z * _F(-1.9515295891e-4)))
    c = (_F(1.0) - _F(0.5) * z) + z * z * (
        _F(4.166664568298827e-2) + z * (_F(-1.388731625493765e-3) + z * _F(2.443315711809948e-5))
    )
    return rotated(r, c, s, quadrant)


@njit(inline="always", error_model="numpy", cache=True)
def normal_pair(key, counter):
    """Two independent standard normals (float32) for (key, counter)."""
    h = hash64(key, counter)
    return normal_pair_from_bits(np.uint32(h >> _S32), np.uint32(h & _LOW32))


@njit(inline="always", error_model="numpy", cache=True)
def hash_block(key, first, n, high, low):
    """high[k], low[k] = the high and low 32 bits of hash64(key, first + k) for k < n (uint32): the
    counter's product with golden as a running sum (the same bits mod 2^64), in 64-bit lanes."""
    z = key + first * _GOLDEN_U
    for k in range(n):
        h = mix64(z)
        high[k] = np.uint32(h >> _S32)
        low[k] = np.uint32(h & _LOW32)
        z += _GOLDEN_U


@njit(inline="always", error_model="numpy", cache=True)
def normal_pairs_into(key, first, z_first, z_second, high, low):
    """z_first[k], z_second[k] = normal_pair(key, first + k) for k < len(z_first) (float32);
    high, low: uint32 scratch of at least that length.

    Two loops, so that each vectorises on its own: the 64-bit hashes (``hash_block``), then float32
    Box-Muller on 32-bit lanes only. One loop mixing 64-bit and float32 lanes runs at half speed
    (LLVM splits it into 512-bit integer and 256-bit float vectors, and 512-bit vectors close one
    of the two float ports).
    """
    n = z_first.shape[0]
    hash_block(key, first, n, high, low)
    for k in range(n):
        z_first[k], z_second[k] = normal_pair_from_bits(high[k], low[k])


@njit(inline="always", error_model="numpy", cache=True)
def uniform_pair(key, counter):
    """Two independent uniforms in [0, 1) (float64, 32 bits each) for (key, counter)."""
    h = hash64(key, counter)
    return np.float64(h >> _S32) * 2.0**-32, np.float64(h & _LOW32) * 2.0**-32


NORMALS_CHUNK = 1024  # pairs per piece of a fill: its scratch stays in L1


def _fill_normals(key, first, out):
    """Fill ``out`` (2, n) float32: column k holds the normal pair of counter first + k."""
    n = out.shape[1]
    for c in prange((n + NORMALS_CHUNK - 1) // NORMALS_CHUNK):
        k0 = c * NORMALS_CHUNK
        k1 = min(n, k0 + NORMALS_CHUNK)
        high = np.empty(k1 - k0, np.uint32)
        low = np.empty(k1 - k0, np.uint32)
        normal_pairs_into(key, first + np.uint64(k0), out[0, k0:k1], out[1, k0:k1], high, low)


def _fill_uniforms(key, first, out):
    """Fill ``out`` (2, n) float64: column k holds the uniform pair of counter first + k."""
    n = out.shape[1]
    for k in prange(n):
        u0, u1 = uniform_pair(key, first + np.uint64(k))
        out[0, k] = u0
        out[1, k] = u1


# threaded (from the main thread, for whole arrays) and serial without the GIL (for pieces of an
# array filled by several Python threads at once: the workqueue layer refuses concurrent callers)
fill_normals, fill_normals_serial = parallel_and_serial(_fill_normals)
fill_uniforms, fill_uniforms_serial = parallel_and_serial(_fill_uniforms)


def normals(key: np.uint64, n_pairs: int, first: int = 0, serial: bool = False) -> np.ndarray:
    """(2, n_pairs) float32 standard normals of stream ``key``, counters first..first+n_pairs-1;
    ``serial``: on the calling thread only (safe from any thread)."""
    out = np.empty((2, n_pairs), np.float32)
    (fill_normals_serial if serial else fill_normals)(np.uint64(key), np.uint64(first), out)
    return out


def uniforms(key: np.uint64, n_pairs: int, first: int = 0, serial: bool = False) -> np.ndarray:
    """(2, n_pairs) float64 uniforms in [0, 1) of stream ``key``, counters first..first+n_pairs-1;
    ``serial``: on the calling thread only (safe from any thread)."""
    out = np.empty((2, n_pairs), np.float64)
    (fill_uniforms_serial if serial else fill_uniforms)(np.uint64(key), np.uint64(first), out)
    return out
