"""Program-and-verify (``crossbar.laws.verify``) in torch operations, every device of a piece at once.

The CPU's kernel runs each device's loop to its end; here every unfinished device takes one step at a time: the
phases that draw nothing (a ramp that does not apply, the end of an iteration, a verdict) are settled for every
device until each stands before a draw (a pulse and the read after it, or a confirming read) or has finished; then
the devices that stand before one take it, each at its own slot and counter, and the finished ones leave. So each
device goes through the very operations of the CPU's loop, in its order, with the same draws. The loop runs while
any device is unfinished. Every operation is IEEE-exact (+ - * /, the correctly rounded sqrt, comparisons); the
window's half-widths, whose soft cap takes a tanh, come from the CPU's kernel on the host (``ops.half_widths``):
the same bits on every device.
"""

from __future__ import annotations

import torch

from . import rng

RESET, SET, END, CONFIRM, CONFIRMED, FINISHED = range(6)


def verify_pairs(ops, targets: torch.Tensor, starts: torch.Tensor, kept: torch.Tensor, settings: tuple, first: int
                 ) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """``lawops.NumpyOps.verify_pairs`` on tensors: (2, m) targets, starts and kept (float32: what a device whose window
    reaches the floor keeps) -> (conductances float32, pulses int32, verify reads int32, converged int8), each (2, m)."""
    (window_us, window_rel, window_max, floor, max_pulses, max_iterations, confirm, noise_us, noise_rel, step_us, gain, growth,
     spread, reset_ratio, saturation, pulse_key, read_key, events) = settings  # fmt: skip
    m, device = targets.shape[1], targets.device
    target = targets.reshape(-1).to(torch.float64)
    half = ops.half_widths(targets, window_us, window_rel, window_max).reshape(-1)
    index = torch.arange(2 * m, device=device)
    s = {"index": index, "target": target, "g": starts.reshape(-1).to(torch.float64), "lo": target - half, "hi": target + half,
         "second": index >= m, "base": (first + index % m) * events, "slot": torch.zeros_like(index)}  # fmt: skip
    out = {name: torch.empty(2 * m, dtype=dtype, device=device) for name, dtype in
           (("g", torch.float32), ("pulses", torch.int32), ("slot", torch.int32), ("done", torch.int8))}  # fmt: skip
    skipped = s["lo"] <= floor  # one pulse, not verified: the write stays
    if bool(skipped.any()):
        at = index[skipped]
        out["g"][at], out["pulses"][at], out["slot"][at], out["done"][at] = kept.reshape(-1)[skipped], 1, 0, 1
        s = {name: value[~skipped] for name, value in s.items()}
    s["r"] = _read(ops, s, s["g"], read_key, noise_us, noise_rel)
    s["slot"] = s["slot"] + 1
    zeros = torch.zeros_like(s["index"])
    s.update({"resets": zeros, "sets": zeros, "pulses": zeros, "iterations": zeros, "phase": zeros, "done": torch.zeros_like(s["second"])})
    ramp = {"max_pulses": max_pulses, "max_iterations": max_iterations, "confirm": confirm}
    pulse = (step_us, gain, growth, spread, reset_ratio, saturation)
    while s["index"].numel():
        _settle(s, **ramp)
        finished = s["phase"] == FINISHED
        if bool(finished.any()):
            for name, values in out.items():
                values[s["index"][finished]] = s[name][finished].to(values.dtype)
            s = {name: value[~finished] for name, value in s.items()}
        if s["index"].numel():
            _step(ops, s, pulse_key, read_key, noise_us, noise_rel, *pulse)
    return tuple(out[name].reshape(2, m) for name in ("g", "pulses", "slot", "done"))


def _settle(s: dict, max_pulses: int, max_iterations: int, confirm: bool) -> None:
    """Move every device through the phases that draw nothing, until each stands before a draw or has finished."""
    while True:
        phase, r, lo, hi = s["phase"], s["r"], s["lo"], s["hi"]
        phase = torch.where((phase == RESET) & ~((r > hi) & (s["resets"] < max_pulses)), SET, phase)
        phase = torch.where((phase == SET) & ~((r < lo) & (s["sets"] < max_pulses)), END, phase)
        ending = phase == END
        s["pulses"] = s["pulses"] + torch.where(ending, s["resets"] + s["sets"], 0)
        s["iterations"] = s["iterations"] + ending.to(s["iterations"].dtype)
        inside = (lo <= r) & (r <= hi)
        if confirm:
            phase = torch.where(ending & inside, CONFIRM, phase)
        judged = (ending & (~inside if confirm else torch.ones_like(inside))) | (phase == CONFIRMED)
        maxed = (s["resets"] >= max_pulses) | (s["sets"] >= max_pulses)
        stop = judged & (inside | maxed | (s["iterations"] >= max_iterations))
        again = judged & ~stop
        s["done"] = s["done"] | (judged & inside)
        phase = torch.where(stop, FINISHED, torch.where(again, RESET, phase))
        s["resets"] = torch.where(again, 0, s["resets"])
        s["sets"] = torch.where(again, 0, s["sets"])
        changed = bool((phase != s["phase"]).any())
        s["phase"] = phase
        if not changed:
            return


def _step(ops, s: dict, pulse_key, read_key, noise_us, noise_rel, step_us, gain, growth, spread, reset_ratio, saturation) -> None:
    """Every device takes its draw: a RESET or SET pulse (its step partly sized by the last read's distance to the
    target, ``gain``) and the read after it, or a confirming read."""
    phase, g = s["phase"], s["g"]
    resetting, setting = phase == RESET, phase == SET
    z = _normal(pulse_key, s)
    k = torch.where(resetting, s["resets"], s["sets"]).to(torch.float64)
    grown = 1.0 + spread * z
    size = (step_us + gain * (s["target"] - s["r"]).abs()) * (1.0 + growth * k) * torch.where(grown > 0.0, grown, 0.0)  # max(0.0, x)
    if saturation > 0:
        ratio = g / saturation
        rest = 1.0 - ratio
        up, down = torch.where(rest > 0.0, rest, 0.0), torch.where(ratio < 1.0, ratio, 1.0)  # max(0, 1 - g/s), min(1, g/s)
        set_g, reset_g = g + size * up, g - reset_ratio * size * down
    else:
        set_g, reset_g = g + size * 1.0, g - reset_ratio * size * 1.0
    pulsed = torch.where(setting, set_g, reset_g)
    pulsed = torch.where(0.0 > pulsed, 0.0, pulsed)  # Python's max(g, 0.0)
    s["g"] = g = torch.where(resetting | setting, pulsed, g)
    s["r"] = _read(ops, s, g, read_key, noise_us, noise_rel)
    s["slot"] = s["slot"] + 1
    s["resets"] = s["resets"] + resetting.to(s["resets"].dtype)
    s["sets"] = s["sets"] + setting.to(s["sets"].dtype)
    s["phase"] = torch.where(phase == CONFIRM, CONFIRMED, phase)


def _normal(key, s: dict) -> torch.Tensor:
    """Each device's normal (float64) of stream ``key`` at its slot: the pair's first for G+, second for G-."""
    first, second = rng.normal_pairs_at(key, s["base"] + s["slot"])
    return torch.where(s["second"], second, first).to(torch.float64)


def _read(ops, s: dict, g: torch.Tensor, read_key, noise_us: float, noise_rel: float) -> torch.Tensor:
    """A verify read of every device at its slot: g + sqrt(noise_us^2 + (noise_rel g)^2) z (float64)."""
    rel = noise_rel * g
    return g + ops.sqrt(noise_us * noise_us + rel * rel) * _normal(read_key, s)
