"""The counter hash of ``crossbar.laws.rng`` and the pieces of Box-Muller in torch operations, on any device, bit
for bit (``readnormals`` assembles the per-read normals from them).

splitmix64's finalizer of ``key + counter * golden`` in int64 arithmetic (torch's uint64 lacks shifts on
the CPU): multiplication and addition wrap mod 2^64 alike for signed and unsigned integers, xor is the
same, and a logical right shift is the arithmetic one with the sign-extended bits masked off. Every float32
torch operation here is one IEEE operation (no ``addcmul``, no ``alpha``). One exception: torch's float32
``sqrt`` on the CPU is not correctly rounded (AVX-512: 692 of 10^6 values off by one ulp), so ``sqrt_f32``
takes it in float64 and rounds once, which is the correctly rounded float32 root (53 >= 2 * 24 + 2 bits).
"""

from __future__ import annotations

import math

import torch

from ..crossbar.laws import rng as host_rng


def _signed(value: int) -> int:
    """A uint64 constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


GOLDEN = _signed(host_rng.GOLDEN)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)
_LOW32 = 0xFFFFFFFF


def _shift_right(z: torch.Tensor, bits: int) -> torch.Tensor:
    """The logical right shift of int64 z by 0 < bits < 64 (as uint64 >> bits)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finalizer of int64 z (the bits of a uint64)."""
    z = (z ^ _shift_right(z, 30)) * _M1
    z = (z ^ _shift_right(z, 27)) * _M2
    return z ^ _shift_right(z, 31)


def key_tensor(key, device: torch.device) -> torch.Tensor:
    """A 0-d int64 tensor holding the bits of a uint64 stream key."""
    return torch.tensor(_signed(int(key)), dtype=torch.int64, device=device)


def hash64(keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """64 random bits (int64) of (key, counter), broadcast: ``mix64(key + counter * golden)``."""
    return mix64(keys + counters * GOLDEN)


def log_reduction(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cephes logf's reduction of positive finite float32 u: (exponent e, x = m - 1), u = 2^e (1 + x),
    1 + x in [sqrt(1/2), sqrt(2)) (float32 both)."""
    bits = u.view(torch.int32)
    fe = (bits >> 23).to(torch.float32) - 127.0
    m = ((bits & 0x007FFFFF) | 0x3F800000).view(torch.float32)
    big = m > 2.0 * 0.70710678118654752  # float32(2) * float32(sqrt(1/2)): exact doubling of the float32 constant
    m = torch.where(big, m * 0.5, m)
    fe = torch.where(big, fe + 1.0, fe)
    return fe, m - 1.0


def sqrt_f32(x: torch.Tensor) -> torch.Tensor:
    """The correctly rounded float32 square root of float32 x, on any device."""
    return torch.sqrt(x.to(torch.float64)).to(torch.float32)


def halves(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The high and low 32 bits of 64-bit hashes h (int64), as non-negative int64."""
    return _shift_right(h, 32), h & _LOW32


def radius_uniform(high: torch.Tensor) -> torch.Tensor:
    """Box-Muller's uniform in (0, 1) of a hash's high 32 bits: (high >> 1 + 1/2) 2^-31 (float32)."""
    return ((high >> 1).to(torch.float32) + 0.5) * 2.0**-31


def angle_offset(low: torch.Tensor) -> torch.Tensor:
    """The angle's offset in [-pi/4, pi/4) from bits 6-29 of a hash's low 32 bits (float32)."""
    return (((low & 0x3FFFFFFF) >> 6).to(torch.float32) * 2.0**-24 - 0.5) * (math.pi / 2)


def rotated(r: torch.Tensor, c: torch.Tensor, s: torch.Tensor, quadrant: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """r times (cos, sin) of the angle whose offset has cosine c and sine s, turned by quadrant * 90 degrees."""
    swap = (quadrant & 1) == 1
    first = torch.where(swap, s, c)
    second = torch.where(swap, c, s)
    first = torch.where((quadrant == 1) | (quadrant == 2), -first, first)
    second = torch.where(quadrant >= 2, -second, second)
    return r * first, r * second


def counters(first: int, n: int, device: torch.device) -> torch.Tensor:
    """int64 counters first .. first + n - 1."""
    return torch.arange(n, dtype=torch.int64, device=device) + first


# Cephes logf's polynomial (highest power first) and sinf / cosf on [-pi/4, pi/4] as ``laws.rng`` evaluates them
_LOG_TERMS = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
              2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)  # fmt: skip
_SIN_TERMS = (-1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4)
_COS_TERMS = (4.166664568298827e-2, -1.388731625493765e-3, 2.443315711809948e-5)


def _f32(value: float) -> float:
    """A float32 constant as the Python float with its value (torch then multiplies in float32)."""
    return float(torch.tensor(value, dtype=torch.float32))


def log_f32(u: torch.Tensor) -> torch.Tensor:
    """``laws.rng.log_f32`` (stream version 1): Cephes logf, every step one float32 operation, none fused."""
    fe, x = log_reduction(u)
    z = x * x
    y = torch.full_like(x, _f32(_LOG_TERMS[0]))
    for c in _LOG_TERMS[1:]:
        y = y * x + _f32(c)
    y = y * x * z
    y = y + fe * _f32(-2.12194440e-4)
    y = y - 0.5 * z
    return x + y + fe * _f32(0.693359375)


def normal_pairs(key, first: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) float32 normals of stream version 1 (``laws.rng.normal_pair``) of counters first .. first + n - 1
    of stream ``key`` (a uint64), each (n,): the programming, fault, drift and per-epoch draws."""
    return normal_pairs_at(key, counters(_signed(first), n, device))


def normal_pairs_at(key, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) float32 normals of stream version 1 of stream ``key`` at counters ``at`` (int64, any shape)."""
    high, low = halves(hash64(key_tensor(key, at.device), at))
    r = sqrt_f32(-2.0 * log_f32(radius_uniform(high)))
    a = angle_offset(low)
    z = a * a
    s0, s1, s2 = (_f32(c) for c in _SIN_TERMS)
    c0, c1, c2 = (_f32(c) for c in _COS_TERMS)
    s = a + a * z * (s0 + z * (s1 + z * s2))
    c = (1.0 - 0.5 * z) + z * z * (c0 + z * (c1 + z * c2))
    return rotated(r, c, s, low >> 30)


def uniform_pairs(key, first: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) float64 uniforms in [0, 1) (``laws.rng.uniform_pair``) of counters first .. first + n - 1."""
    high, low = halves(hash64(key_tensor(key, device), counters(_signed(first), n, device)))
    return high.to(torch.float64) * 2.0**-32, low.to(torch.float64) * 2.0**-32
