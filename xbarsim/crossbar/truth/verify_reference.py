"""Program-and-verify in plain Python and NumPy, one device at a time: the truth for ``laws/verify.py``.

The same loop (``verify`` module doc), the same draws (``reference.normal_pairs`` at counter
``pair * events + slot``) and the same float64 arithmetic in the same order, so the two agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from ...config import VerifyProgramming
from ..laws import rng
from .reference import normal_pairs


def _normal(key: np.uint64, counter: int, side: int) -> float:
    first, second = normal_pairs(key, np.array([counter], np.uint64))
    return float((first if side == 0 else second)[0])


def verify_device(target: float, start: float, prog: VerifyProgramming, keys: tuple[np.uint64, np.uint64], pair: int,
                  side: int, floor_us: float | None = None, kept: float | None = None) -> tuple[np.float32, int, int, bool]:  # fmt: skip
    """(final conductance, pulses, verify reads, converged) of device ``side`` (0: G+, 1: G-) of pair ``pair``; a
    device whose window reaches ``floor_us`` gets one pulse and no verify: it keeps ``kept`` (default its start)."""
    pulse = prog.pulse
    target, g = float(np.float32(target)), float(np.float32(start))
    half = prog.window_us + prog.window_pct / 100 * target
    if prog.window_max_us:
        half = prog.window_max_us * math.tanh(half / prog.window_max_us)
    lo, hi = target - half, target + half
    if floor_us is not None and lo <= floor_us:
        return np.float32(g if kept is None else kept), 1, 0, True
    base, slot = pair * prog.events, 0

    def read(g: float) -> float:
        nonlocal slot
        rel = prog.read_noise_pct / 100 * g
        value = g + np.sqrt(prog.read_noise_us * prog.read_noise_us + rel * rel) * _normal(keys[1], base + slot, side)
        slot += 1
        return float(value)

    def step(g: float, r: float, k: int, direction: int) -> float:
        first = pulse.step_us + pulse.step_pct / 100 * abs(target - r)
        size = first * (1.0 + pulse.step_growth * k) * max(0.0, 1.0 + pulse.step_spread * _normal(keys[0], base + slot, side))
        saturation = pulse.saturation_us or 0.0
        if direction > 0:
            g = g + size * (max(0.0, 1.0 - g / saturation) if saturation > 0 else 1.0)
        else:
            g = g - pulse.reset_ratio * size * (min(1.0, g / saturation) if saturation > 0 else 1.0)
        return max(g, 0.0)

    reads = 0

    def counted_read(g: float) -> float:
        nonlocal reads
        reads += 1
        return read(g)

    r = counted_read(g)
    pulses = 0
    for _ in range(prog.max_iterations):
        ramps = [0, 0]
        for which, direction in ((0, -1), (1, 1)):
            while (r > hi if direction < 0 else r < lo) and ramps[which] < prog.max_pulses:
                g = step(g, r, ramps[which], direction)  # the pulse and the read after it share one slot
                r = counted_read(g)
                ramps[which] += 1
        pulses += sum(ramps)
        if lo <= r <= hi:
            if prog.confirm:
                r = counted_read(g)
            if lo <= r <= hi:
                return np.float32(g), pulses, reads, True
        if max(ramps) >= prog.max_pulses:
            break
    return np.float32(g), pulses, reads, False


def verify(g_target: np.ndarray, start: np.ndarray, prog: VerifyProgramming, seed: int, index: int = 0, floor_us: float | None = None,
           kept: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(2, ...) targets and starts -> (conductances float32, pulses int32, verify reads int32, converged bool), device
    by device; a device whose window reaches ``floor_us`` skips the loop and keeps ``kept`` (default its start)."""
    keys = (rng.stream_key(seed, rng.PURPOSE_VERIFY_PULSE, index), rng.stream_key(seed, rng.PURPOSE_VERIFY_READ, index))
    flat_t, flat_s = g_target.reshape(2, -1), start.reshape(2, -1)
    flat_k = (start if kept is None else kept).reshape(2, -1)
    out = np.empty(flat_t.shape, np.float32)
    pulses = np.empty(flat_t.shape, np.int32)
    reads = np.empty(flat_t.shape, np.int32)
    done = np.empty(flat_t.shape, bool)
    for side in range(2):
        for pair in range(flat_t.shape[1]):
            out[side, pair], pulses[side, pair], reads[side, pair], done[side, pair] = verify_device(
                flat_t[side, pair], flat_s[side, pair], prog, keys, pair, side, floor_us, flat_k[side, pair])
    return tuple(a.reshape(g_target.shape) for a in (out, pulses, reads, done))
