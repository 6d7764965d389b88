"""The normals of per-read noise in torch operations: the CPU's noise stream version 2, bit for bit, on any device.

Every read-time draw of the torch backend (read and output noise, every device's read noise, the re-reads of
bound management, drift compensation's probe reads) comes from ``read_normal_pairs``, the per-read stream of
``crossbar.laws.readnormals`` (``STREAM_VERSION``): the same hash as ``rng``, Box-Muller with fused multiply-adds
in the documented order (docs/determinism.md, "Per-read normals"), and re-reads' output noise from both normals
of a pair (``reread_output_normals``). ``fma32`` is torch's exactly rounded ``a * b + c`` in float32 (torch has
no fused float32 multiply-add it promises on every device).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..crossbar.laws import readnormals as host
from . import rng

_F = np.float32
# Cephes logf's polynomial (highest power first), sinf / cosf on [-pi/4, pi/4]: the CPU's, as float32 numbers
LOG_COEFFICIENTS = tuple(float(_F(c)) for c in host.LOG_COEFFICIENTS)
SIN_COEFFICIENTS = tuple(float(_F(c)) for c in host.SIN_COEFFICIENTS)
COS_COEFFICIENTS = tuple(float(_F(c)) for c in host.COS_COEFFICIENTS)
_LN2_HI, _LN2_LO = float(_F(0.693359375)), float(_F(-2.12194440e-4))


def fma32(a, b, c) -> torch.Tensor:
    """a * b + c in float32 with one rounding (tensors or float32-exact numbers, broadcast): the product is
    exact in float64, TwoSum gives the sum's error exactly, and the sum rounded to odd in float64 rounds to
    the float32 nearest the exact value (53 >= 24 + 2 bits)."""
    product = _f64(a) * _f64(b)
    addend = _f64(c)
    total = product + addend
    back = total - product
    error = (product - (total - back)) + (addend - back)
    even = (total.view(torch.int64) & 1) == 0
    toward = torch.where(error > 0, math.inf, -math.inf).to(torch.float64)
    return torch.where((error != 0) & even, torch.nextafter(total, toward), total).to(torch.float32)


def _f64(v):
    return v.to(torch.float64) if isinstance(v, torch.Tensor) else float(v)


def log_f32(u: torch.Tensor) -> torch.Tensor:
    """Natural log of positive finite float32 u, version 2's order (``laws/readnormals.log_f32``): Cephes logf's
    reduction, the polynomial and the exponent's terms as fused multiply-adds."""
    fe, x = rng.log_reduction(u)
    z = x * x
    p = torch.full_like(x, LOG_COEFFICIENTS[0])
    for c in LOG_COEFFICIENTS[1:]:
        p = fma32(p, x, c)
    y = p * x * z
    y = fma32(fe, _LN2_LO, y)
    y = fma32(-0.5, z, y)
    return fma32(fe, _LN2_HI, x + y)


def read_normal_pairs(keys: torch.Tensor, counters: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) float32 per-read normals (noise stream version 2) of (key, counter), broadcast (int64 tensors)."""
    high, low = rng.halves(rng.hash64(keys, counters))
    r = rng.sqrt_f32(-2.0 * log_f32(rng.radius_uniform(high)))
    a = rng.angle_offset(low)
    z = a * a
    s0, s1, s2 = SIN_COEFFICIENTS
    c0, c1, c2 = COS_COEFFICIENTS
    s = fma32(a * z, fma32(z, fma32(z, s0, s1), s2), a)
    c = fma32(z * z, fma32(z, fma32(z, c0, c1), c2), fma32(-0.5, z, 1.0))
    return rng.rotated(r, c, s, low >> 30)


def reread_output_normals(key: torch.Tensor, base: torch.Tensor, n_out: int, c0: int, c1: int) -> torch.Tensor:
    """(K, c1 - c0) float32: the read + output noise normals of re-reads with counter bases ``base`` (K,) int64
    of a tile's outputs c0 .. c1 - 1 (``rereads``): output c0 + k of a tile of width w, h = ceil(w / 2), the first
    normal of counter base * ceil(n_out / 2) + k for k < h, the second of counter base * ceil(n_out / 2) + k - h after."""
    half = (c1 - c0 + 1) // 2
    counters = base[:, None] * ((n_out + 1) // 2) + torch.arange(half, dtype=torch.int64, device=base.device)
    first, second = read_normal_pairs(key, counters)
    return torch.cat([first, second], dim=1)[:, : c1 - c0]
