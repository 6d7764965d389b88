"""Program-and-verify, per device: a Numba kernel over a piece of device pairs (docs/physics.md §2b).

The loop of one device (target T, start G; window lo = T - w, hi = T + w, w = window_us + window_pct % of T, softly capped
at window_max as window_max tanh(w / window_max)):

    r = read(G)
    repeat:
        k = 0; while r > hi and k < max_pulses: G = RESET pulse k (G); r = read(G); k += 1
        j = 0; while r < lo and j < max_pulses: G = SET pulse j (G);   r = read(G); j += 1
        iterations += 1
        if lo <= r <= hi and (not confirm or lo <= read(G) <= hi): converged, stop
        if iterations == max_iterations or a ramp used max_pulses: not converged, stop

as NeuRRAM's ``program_increment`` (github weierwan/Neurram_48core, ``python/wupdate_control.py``). A pulse steps
by ``(step_us + step_pct % of |T - r|) (1 + step_growth k) max(0, 1 + step_spread n)`` (r the last read) times a
soft-bound factor (``PulseModel``); a
read adds ``N(0, read_noise_us^2 + (read_noise_pct % G)^2)``. Draw slot e of a device (its first read is
slot 0, each pulse and the read after it one slot, a confirming read one slot) takes the normal pair of counter
``pair * events + e`` in the pulse and read streams: G+ the first normal, G- the second. The draws depend on the
device's position and its pulse count only, never on the piece or the thread. A device whose window reaches ``floor``
(T - w <= floor; ``floor: reset`` passes g_min, -inf: none) skips the loop: the loop could not tell it from the RESET
state, so it gets one pulse, no read and no draw, and keeps ``kept`` (its write).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..jit import JIT_OPTIONS
from .rng import normal_pair

_kernel = njit(nogil=True, **JIT_OPTIONS)
_helper = njit(inline="always", **JIT_OPTIONS)


@_helper
def _read(g, counter, side, key, noise_us, noise_rel):
    """A verify read of conductance g (float64): g + sqrt(noise_us^2 + (noise_rel g)^2) z."""
    z_pos, z_neg = normal_pair(key, counter)
    z = np.float64(z_pos if side == 0 else z_neg)
    rel = noise_rel * g
    return g + np.sqrt(noise_us * noise_us + rel * rel) * z


@_helper
def _pulse(g, k, direction, counter, side, key, step_us, gain, distance, growth, spread, reset_ratio, saturation):
    """g after pulse k of a ramp: direction +1 SET, -1 RESET; distance |T - r| of the last read; never below 0."""
    z_pos, z_neg = normal_pair(key, counter)
    z = np.float64(z_pos if side == 0 else z_neg)
    size = (step_us + gain * distance) * (1.0 + growth * k) * max(0.0, 1.0 + spread * z)
    if direction > 0:
        factor = max(0.0, 1.0 - g / saturation) if saturation > 0 else 1.0
        g = g + size * factor
    else:
        factor = min(1.0, g / saturation) if saturation > 0 else 1.0
        g = g - reset_ratio * size * factor
    return max(g, 0.0)


@_helper
def _half_width(target, window_us, window_rel, window_max):
    """The window's half-width at target (float64): window_us + window_rel target, softly capped (libm's tanh)."""
    half = window_us + window_rel * target
    if window_max > 0:
        half = window_max * math.tanh(half / window_max)
    return half


@_kernel
def half_widths(targets, window_us, window_rel, window_max, out):
    """out (2m,) float64: the window half-width of every device of a piece (targets: the rows of (2, m) float32), as
    ``verify_pairs`` computes it; the torch backend's loop takes them from here (tanh is libm's on the host)."""
    m = targets[0].shape[0]
    for side in range(2):
        for k in range(m):
            out[side * m + k] = _half_width(np.float64(targets[side][k]), window_us, window_rel, window_max)


@_kernel
def verify_pairs(targets, starts, kept, window_us, window_rel, window_max, floor, max_pulses, max_iterations, confirm, noise_us,
                 noise_rel, step_us, gain, growth, spread, reset_ratio, saturation, pulse_key, read_key, first, events, out, pulses,
                 reads, converged):  # fmt: skip
    """Run the loop (module doc) for every device of a piece: targets, starts and kept (what a device that skips the
    loop keeps) are the rows (G+, G-) of (2, m) float32 arrays; out (float32), pulses and reads (int32: the verify
    reads, confirming ones included) and converged (int8) are rows of (2, m) outputs. window_rel, noise_rel and gain
    (step_pct) are fractions (not %); window_max: the half-width's soft cap (0: none); floor: the level a window must
    stay above to be verified (uS, -inf: none); saturation 0 means no state dependence; first: the piece's first pair."""
    m = targets[0].shape[0]
    for side in range(2):
        for k in range(m):
            target = np.float64(targets[side][k])
            half = _half_width(target, window_us, window_rel, window_max)
            lo, hi = target - half, target + half
            if lo <= floor:  # one pulse, not verified: the write stays
                out[side][k] = kept[side][k]
                pulses[side][k] = 1
                reads[side][k] = 0
                converged[side][k] = 1
                continue
            g = np.float64(starts[side][k])
            base = (first + np.uint64(k)) * np.uint64(events)
            slot = 0
            r = _read(g, base, side, read_key, noise_us, noise_rel)
            slot += 1
            n_pulses = 0
            done = False
            for _ in range(max_iterations):
                reset_ramp = 0
                while r > hi and reset_ramp < max_pulses:
                    g = _pulse(g, reset_ramp, -1, base + np.uint64(slot), side, pulse_key, step_us, gain, abs(target - r), growth, spread,
                               reset_ratio, saturation)  # fmt: skip
                    r = _read(g, base + np.uint64(slot), side, read_key, noise_us, noise_rel)
                    slot += 1
                    reset_ramp += 1
                set_ramp = 0
                while r < lo and set_ramp < max_pulses:
                    g = _pulse(g, set_ramp, 1, base + np.uint64(slot), side, pulse_key, step_us, gain, abs(target - r), growth, spread,
                               reset_ratio, saturation)  # fmt: skip
                    r = _read(g, base + np.uint64(slot), side, read_key, noise_us, noise_rel)
                    slot += 1
                    set_ramp += 1
                n_pulses += reset_ramp + set_ramp
                if lo <= r <= hi:
                    if confirm:
                        r = _read(g, base + np.uint64(slot), side, read_key, noise_us, noise_rel)
                        slot += 1
                    if lo <= r <= hi:
                        done = True
                        break
                if reset_ramp >= max_pulses or set_ramp >= max_pulses:
                    break
            out[side][k] = np.float32(g)
            pulses[side][k] = n_pulses
            reads[side][k] = slot  # every read took one slot
            converged[side][k] = 1 if done else 0
