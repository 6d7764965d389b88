"""Unit cells: programming (one shot or program-and-verify) and the state of N devices per polarity.

A weight sits on ``mapping.devices_per_polarity`` = N devices per polarity, each holding the same target: they
program, drift and read-noise on their own (device n of a cell draws from its own streams, index n; device 0
draws exactly what a one-device cell draws) and their currents add on the bit line, so a cell conducts the sum
(2, n_in, n_out) and its weight is ``(G+ - G-) / (N (g_max - g_min))``. Per-device arrays are (N, 2, n_in, n_out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from ...config import ChipConfig, CombinedReadNoise, DeviceConfig, VerifyProgramming
from . import device, rng
from .lawops import NUMPY_OPS


@dataclass(frozen=True)
class Programmed:
    """The programmed devices of a matrix, (N, 2, n_in, n_out): conductances (float32, uS), stuck codes (int8);
    with program-and-verify also the pulses and verify reads each device took (int32) and whether it converged (bool)."""

    g_prog: np.ndarray
    stuck: np.ndarray
    pulses: np.ndarray | None = None
    verify_reads: np.ndarray | None = None
    converged: np.ndarray | None = None

    @property
    def devices(self) -> int:
        return self.g_prog.shape[0]

    def arrays(self) -> dict[str, np.ndarray | None]:
        """Every array by its field name (None where absent)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def span(cfg: ChipConfig) -> tuple[float, float]:
    """(g_min, g_max) that ``encode.normalized_difference`` takes for a cell: the device's for one device per
    polarity (the same bits as before cells existed), else (0, N (g_max - g_min))."""
    dev, n = cfg.device, cfg.mapping.devices_per_polarity
    return (dev.g_min_us, dev.g_max_us) if n == 1 else (0.0, n * (dev.g_max_us - dev.g_min_us))


def summed(per_device: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """The cell's conductance: the devices' sum in float32, in device order (one device: itself)."""
    total = per_device[0]
    for g in per_device[1:]:
        total = total + g
    return total


def program(g_target: np.ndarray, cfg: ChipConfig, seed: int, ops=NUMPY_OPS) -> Programmed:
    """Program every device of every cell to ``g_target`` (2, n_in, n_out): one write with the write-noise law,
    then (``programming.method: verify``) the program-and-verify loop from there (or from g_min; with ``floor:
    reset`` a device whose window reaches g_min, its target g_min included, keeps its write instead: one pulse, no
    verify read); stuck-at faults last (a stuck device stays stuck: it converges only if its stuck value is inside the
    window). ``ops``: the arrays' operations (``lawops``: NumPy's, or a torch device's, whose arrays ``g_target`` and
    the result are)."""
    dev, n_cell, prog = cfg.device, cfg.mapping.devices_per_polarity, cfg.programming
    written = [device.program(g_target, dev, seed, n, n_cell, ops) for n in range(n_cell)]
    g, stuck = (ops.stack(parts) if n_cell > 1 else parts[0][None] for parts in zip(*written))  # one device: a view, no copy
    if not isinstance(prog, VerifyProgramming):
        return Programmed(g, stuck)
    pulses, reads, converged = ops.zeros(g.shape, np.int32), ops.zeros(g.shape, np.int32), ops.zeros(g.shape, np.bool_)
    floor = float(dev.g_min_us) if prog.floor == "reset" else None
    for n in range(n_cell):
        start = _unstuck_start(g[n], stuck[n], g_target, ops) if prog.start == "written" else ops.full_like(g_target, dev.g_min_us)
        g[n], pulses[n], reads[n], converged[n] = verified(g_target, start, prog, seed, n, ops, floor, kept=g[n])
        _apply_faults(g[n], pulses[n], reads[n], converged[n], stuck[n], g_target, dev, prog, ops)
    return Programmed(g, stuck, pulses, reads, converged)


def _unstuck_start(written: np.ndarray, stuck: np.ndarray, g_target: np.ndarray, ops=NUMPY_OPS) -> np.ndarray:
    """The written state where a device is not stuck (the faults are applied after the loop)."""
    return written if not ops.any(stuck) else ops.where(stuck != 0, g_target, written)


def _apply_faults(g, pulses, reads, converged, stuck, g_target, dev: DeviceConfig, prog: VerifyProgramming, ops=NUMPY_OPS) -> None:
    """Stuck devices sit at g_max / g_min whatever the loop did: the loop spends one ramp on them (max_pulses pulses
    and a read after each, after the first read) and gives up, unless the stuck value is inside the window (then the
    first read, and the confirming one, accept it)."""
    if not ops.any(stuck):
        return
    value = ops.f32(ops.where(stuck > 0, dev.g_max_us, dev.g_min_us))
    half = ops.half_widths(g_target, float(prog.window_us), prog.window_pct / 100, float(prog.window_max_us or 0.0))  # the loop's own
    inside = ops.abs(ops.f64(value) - g_target) <= half
    where = stuck != 0
    accepted, given_up = where & inside, where & ~inside
    g[where] = value[where]
    converged[where] = inside[where]
    pulses[accepted], pulses[given_up] = 0, prog.max_pulses
    reads[accepted], reads[given_up] = 2 if prog.confirm else 1, 1 + prog.max_pulses


def verified(g_target: np.ndarray, start: np.ndarray, prog: VerifyProgramming, seed: int, index: int = 0, ops=NUMPY_OPS,
             floor_us: float | None = None, kept: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The program-and-verify loop (``verify.verify_pairs``) on (2, ...) targets from ``start``, device ``index``
    of its cell: (conductances float32, pulses int32, verify reads int32, converged bool), in pieces (``ops.map_pairs``).
    A device whose window reaches ``floor_us`` (``floor: reset``: g_min) skips the loop and keeps ``kept`` (its
    write; default its start)."""
    pulse, keys = prog.pulse, (rng.stream_key(seed, rng.PURPOSE_VERIFY_PULSE, index), rng.stream_key(seed, rng.PURPOSE_VERIFY_READ, index))
    settings = (float(prog.window_us), prog.window_pct / 100, float(prog.window_max_us or 0.0), -math.inf if floor_us is None else float(floor_us),
                prog.max_pulses, prog.max_iterations, prog.confirm, float(prog.read_noise_us), prog.read_noise_pct / 100, float(pulse.step_us),
                pulse.step_pct / 100, float(pulse.step_growth), float(pulse.step_spread), float(pulse.reset_ratio), float(pulse.saturation_us or 0.0),
                keys[0], keys[1], prog.events)  # fmt: skip

    def piece(first: int, target: np.ndarray, begin: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, ...]:
        return ops.verify_pairs(target, begin, keep, settings, first)

    g, count, reads, done = ops.map_pairs(piece, [g_target, start, start if kept is None else kept], [np.float32, np.int32, np.int32, np.int8])
    return g, count, reads, done != 0


def verify_totals(programmed: Programmed, target: np.ndarray) -> dict[str, float] | None:
    """Program-and-verify's sums over one matrix's devices and its (2, n_in, n_out) target (what ``verify_report``
    pools): devices, converged devices, pulses, verify reads, and the converged devices' residual G_prog - G_target
    (count, sum, sum of squares, uS); None after one-shot programming."""
    if programmed.converged is None:
        return None
    residual = (programmed.g_prog.astype(np.float64) - target)[programmed.converged]
    return {"devices": float(programmed.converged.size), "converged": float(programmed.converged.sum()),
            "pulses": float(programmed.pulses.sum(dtype=np.int64)), "verify_reads": float(programmed.verify_reads.sum(dtype=np.int64)),
            "residual_n": float(residual.size), "residual_sum": float(residual.sum()), "residual_sq": float(np.square(residual).sum())}  # fmt: skip


def verify_report(totals: list[dict[str, float] | None]) -> dict[str, float] | None:
    """Program-and-verify's outcome over the matrices whose ``verify_totals`` are given, pooled: devices, the share
    that converged, pulses and verify reads (mean a device, and totals), the residual of the converged devices (mean,
    std, uS); None if any was programmed in one shot."""
    if not totals or any(t is None for t in totals):
        return None
    s = {key: sum(t[key] for t in totals) for key in totals[0]}
    n = s["residual_n"]
    mean = s["residual_sum"] / n if n else 0.0
    std = float(np.sqrt(max(s["residual_sq"] / n - mean * mean, 0.0))) if n else 0.0
    return {"devices": s["devices"], "converged": s["converged"] / s["devices"], "pulses_mean": s["pulses"] / s["devices"],
            "pulses": s["pulses"], "verify_reads_mean": s["verify_reads"] / s["devices"], "verify_reads": s["verify_reads"],
            "residual_mean_us": mean, "residual_std_us": std}  # fmt: skip


def fitted_on_cell(law) -> bool:
    """Whether a drift or read-noise law describes a unit cell's summed conductance (HERMES's two-device fits): it then
    acts once per cell, not once per device."""
    return bool(getattr(law, "fitted_on_cell", False))


def cell_device(dev: DeviceConfig, n_cell: int) -> DeviceConfig:
    """The device a law fitted on the unit cell sees: the cell's range, N g_min .. N g_max."""
    return dev.model_copy(update={"g_min_us": n_cell * dev.g_min_us, "g_max_us": n_cell * dev.g_max_us})


def _with_read_noise(dev: DeviceConfig, parts: list) -> DeviceConfig:
    """``dev`` with only the read-noise ``parts`` (taken from a validated config, so not validated again)."""
    noise = parts[0] if len(parts) == 1 else CombinedReadNoise.model_construct(kind="combined", parts=parts)
    return dev.model_copy(update={"read_noise": noise})


def drifted(programmed: Programmed, g_target: np.ndarray, dev: DeviceConfig, t_s: float, seed: int,
            drift_law: int = device.DRIFT_LAW, ops=NUMPY_OPS) -> list[np.ndarray]:  # fmt: skip
    """Every device's conductance t_s after programming under ``drift_law`` (N arrays (2, n_in, n_out), float32). A
    drift law fitted on the cell draws its exponent from device 0's stream for every device of the cell (all hold the
    same target, so they share it): the cell's sum then drifts as the law says."""
    shared = fitted_on_cell(dev.drift)
    return [device.drifted(programmed.g_prog[n], programmed.stuck[n], dev, t_s, seed, g_target, 0 if shared else n, drift_law, ops)
            for n in range(programmed.devices)]  # fmt: skip


def epoch_conductances(now: list[np.ndarray], programmed: Programmed, dev: DeviceConfig, t_s: float, seed: int, epoch: int,
                       ops=NUMPY_OPS) -> np.ndarray:  # fmt: skip
    """The cell conductances every read of the epoch sees: each device's per-epoch read noise, summed; a law fitted on
    the cell (the only per-epoch part then: ``CombinedReadNoise``) draws one deviation per cell, from device 0's
    stream, with the cell's conductances and range."""
    if len(now) > 1 and any(fitted_on_cell(part) for part in device.read_noise_parts(dev, "per_epoch")):
        return device.epoch_conductances(summed(now), summed(programmed.g_prog), cell_device(dev, len(now)), t_s, seed, epoch, 0, ops)
    return summed([device.epoch_conductances(g, programmed.g_prog[n], dev, t_s, seed, epoch, n, ops) for n, g in enumerate(now)])


def read_noise_std(now: list[np.ndarray], programmed: Programmed, dev: DeviceConfig, t_s: float, ops=NUMPY_OPS) -> np.ndarray:
    """Std (uS, float32) of a cell's per-read noise: its devices' variances add (one device: its own std), and so do
    those of the parts fitted on the cell, computed once for the cell's sum."""
    if len(now) == 1:
        return device.read_noise_std(now[0], dev, t_s, programmed.g_prog[0], ops=ops)
    parts = device.read_noise_parts(dev, "per_read")
    own = [part for part in parts if not fitted_on_cell(part)]
    on_cell = [part for part in parts if fitted_on_cell(part)]
    variance = ops.zeros(now[0].shape)
    stds = []
    if own:
        per_device = _with_read_noise(dev, own) if on_cell else dev
        stds += [device.read_noise_std(g, per_device, t_s, programmed.g_prog[n], ops=ops) for n, g in enumerate(now)]
    if on_cell:
        cell = _with_read_noise(cell_device(dev, len(now)), on_cell)
        stds.append(device.read_noise_std(summed(now), cell, t_s, summed(programmed.g_prog), ops=ops))
    for std in stds:
        std = ops.f64(std)
        variance += std * std
    return ops.f32(ops.sqrt(variance))
