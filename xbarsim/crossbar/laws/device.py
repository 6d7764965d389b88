"""Device physics as functions over conductance arrays (docs/physics.md §2-5).

Conductance arrays are (2, n_in, n_out) float32 in uS, [0] = G+ and [1] = G-. Every random draw
comes from ``rng`` streams keyed by (seed, purpose); device (k, i, j) uses counter i * n_out + j
(the pair's first normal for G+, the second for G-), so a draw does not depend on the tiling.
The whole-array functions (``program``, ``drifted``, ``epoch_conductances``, ``read_noise_std``)
evaluate their law in pieces of device pairs (``ops.map_pairs``: on several threads for NumPy's
arrays): the same values, faster. Each function selects its law and coefficients here, once, and
evaluates it with ``ops`` (``lawops``): NumPy's arrays and Numba kernels by default, or the torch
backend's tensors on its device (``crossbar_torch.lawops``), the same bits.
"""

from __future__ import annotations

import zlib

import numpy as np

from ...config import (
    AbsoluteWriteNoise,
    AdditiveReadNoise,
    CombinedReadNoise,
    CurrentReadNoise,
    DeviceConfig,
    HermesDrift,
    HermesReadNoise,
    LogConductanceReadNoise,
    LogNormalDrift,
    LogTimeDrift,
    NoDrift,
    NoReadNoise,
    NoWriteNoise,
    PCMDrift,
    PCMReadNoise,
    PCMWriteNoise,
    PolynomialWriteNoise,
    PowerLawDrift,
    ProportionalReadNoise,
    ProportionalWriteNoise,
    RelaxationDrift,
    StuckAtFaults,
)
from . import chiplaws, lawkernels, rng
from .lawops import NUMPY_OPS

STUCK_ON = 1
STUCK_OFF = -1

# how the power-law and PCM drift's ((t + t0) / t0)^(-nu) is evaluated (docs/physics.md, docs/file-formats.md):
# 2 = exp(-nu ln((t + t0) / t0)), one log per array and NumPy's vectorised exp per device; 1 = NumPy's pow per
# device, as xbarsim did before (chip files without a drift_law load with it). The two give a different float32
# conductance for about 1 device in 10^8, by one unit in the last place.
DRIFT_LAW = 2


def drift_power(base: float, exponents, drift_law: int = DRIFT_LAW, ops=NUMPY_OPS):
    """base ** exponents (float64, base > 0) under ``drift_law``; law 2 may overwrite ``exponents``."""
    if drift_law == 1:
        return ops.power(base, exponents)
    return ops.scaled_exp(exponents, float(np.log(base)))


def device_normals(seed: int, purpose: int, shape: tuple[int, ...], index: int = 0, first: int = 0, ops=NUMPY_OPS):
    """Standard normals, float32, one per device of a (2, ...) array (stream index ``index``) whose
    first device pair is pair ``first`` of its matrix (a piece of it; 0 for a whole matrix); ``ops``: the arrays'
    operations (``lawops``: NumPy's, or a torch device's)."""
    pairs = int(np.prod(shape[1:]))
    return ops.normals(rng.stream_key(seed, purpose, index), pairs, first).reshape(shape)


def write_noise_std(g_target: np.ndarray, noise, g_max: float, cell_devices: int = 1, ops=NUMPY_OPS) -> np.ndarray:
    """Std (uS) of the programming error of every device, same shape as ``g_target``; ``cell_devices``: the
    devices per polarity of a unit cell (a law fitted on the cell gives each device std / sqrt(N))."""
    g = ops.f64(g_target)
    if isinstance(noise, PolynomialWriteNoise):
        return chiplaws.polynomial_write_std(g, noise, g_max, cell_devices, ops)
    if isinstance(noise, NoWriteNoise):
        return ops.full_like(g, 0.0)
    if isinstance(noise, AbsoluteWriteNoise):
        return ops.full_like(g, noise.sigma)
    if isinstance(noise, ProportionalWriteNoise):
        return noise.sigma * ops.abs(g)
    if isinstance(noise, PCMWriteNoise):
        gh = g / g_max
        return pcm_write_scale(noise, g_max) * ops.maximum(noise.c0 + noise.c1 * gh + noise.c2 * gh * gh, 0.0)
    raise TypeError(f"unknown write-noise model {noise!r}")


def pcm_write_scale(noise: PCMWriteNoise, g_max: float) -> float:
    """``scale * g_max / g_max_reference_us``: exactly ``scale`` at the reference g_max (the presets' 25 uS)."""
    return noise.scale * (g_max / noise.g_max_reference_us)


def stuck_faults(faults: StuckAtFaults, shape: tuple[int, ...], seed: int, first: int = 0, index: int = 0, ops=NUMPY_OPS) -> np.ndarray:
    """int8 array: STUCK_ON with probability p_on, STUCK_OFF with p_off, else 0; per device of a
    (2, ...) array whose first pair is pair ``first`` of its matrix (``index``: the device of its unit cell)."""
    stuck = ops.zeros(shape, np.int8)
    if faults.p_on == 0 and faults.p_off == 0:
        return stuck
    u = ops.uniforms(rng.stream_key(seed, rng.PURPOSE_FAULT, index), int(np.prod(shape[1:])), first).reshape(shape)
    stuck[u < faults.p_on] = STUCK_ON
    stuck[(u >= faults.p_on) & (u < faults.p_on + faults.p_off)] = STUCK_OFF
    return stuck


def program(g_target: np.ndarray, device: DeviceConfig, seed: int, index: int = 0, cell_devices: int = 1,
            ops=NUMPY_OPS) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Write ``g_target`` with programming error, then apply stuck-at faults.

    ``G = max(0, G_target + std(G_target) * n)``; stuck devices sit at g_max (on) or g_min (off).
    ``index``: which device of a unit cell of ``cell_devices`` per polarity (its own streams; 0 for one).
    Returns (programmed conductances float32, stuck codes int8).
    """
    def piece(first: int, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _program_pairs(target, device, seed, first, index, cell_devices, ops)

    g, stuck = ops.map_pairs(piece, [g_target], [np.float32, np.int8])
    return g, stuck


def programmed_checksum(g_prog: np.ndarray, stuck: np.ndarray) -> int:
    """CRC-32 of the programmed conductances (float32) then the stuck codes (int8): a fingerprint of a
    programmed array (a chip file stores it; a reload regenerates the state and compares)."""
    crc = zlib.crc32(np.ascontiguousarray(g_prog, np.float32))  # on the host: a torch chip hands it NumPy copies
    return zlib.crc32(np.ascontiguousarray(stuck, np.int8), crc)


def _program_pairs(g_target: np.ndarray, device: DeviceConfig, seed: int, first: int, index: int = 0,
                   cell_devices: int = 1, ops=NUMPY_OPS) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    noise = device.write_noise
    if isinstance(noise, NoWriteNoise):
        g = ops.copy(g_target)
    elif isinstance(noise, PolynomialWriteNoise):
        std = write_noise_std(g_target, noise, device.g_max_us, cell_devices, ops)
        z = device_normals(seed, rng.PURPOSE_WRITE, g_target.shape, index, first, ops)
        g = ops.maximum(g_target + ops.f32(std * ops.f64(z)), 0.0)
    else:
        kind, c0, c1, c2, scale = _write_law(noise, device.g_max_us)
        g = ops.written(g_target, kind, c0, c1, c2, scale, float(device.g_max_us), rng.stream_key(seed, rng.PURPOSE_WRITE, index), first)
    stuck = stuck_faults(device.faults, g_target.shape, seed, first, index, ops)
    if device.faults.p_on > 0 or device.faults.p_off > 0:
        g[stuck == STUCK_ON] = device.g_max_us
        g[stuck == STUCK_OFF] = device.g_min_us
    return g, stuck


def _write_law(noise, g_max: float) -> tuple[int, float, float, float, float]:
    """(kind, c0, c1, c2, scale) of a write-noise law for ``lawkernels.written``."""
    if isinstance(noise, AbsoluteWriteNoise):
        return lawkernels.WRITE_ABSOLUTE, float(noise.sigma), 0.0, 0.0, 1.0
    if isinstance(noise, ProportionalWriteNoise):
        return lawkernels.WRITE_PROPORTIONAL, float(noise.sigma), 0.0, 0.0, 1.0
    if isinstance(noise, PCMWriteNoise):
        return lawkernels.WRITE_PCM, float(noise.c0), float(noise.c1), float(noise.c2), float(pcm_write_scale(noise, g_max))
    raise TypeError(f"unknown write-noise model {noise!r}")


def drift_factor(g_prog: np.ndarray, device: DeviceConfig, t_s: float, seed: int, first: int = 0,
                 g_target: np.ndarray | None = None, index: int = 0, drift_law: int = DRIFT_LAW, ops=NUMPY_OPS) -> np.ndarray | None:  # fmt: skip
    """Multiplicative drift ``G(t) / G_prog`` per device (float64) of a (2, ...) array whose first
    pair is pair ``first`` of its matrix, or None where it is 1 everywhere (no drift; power_law and
    pcm at t = 0, where 1^(-nu) = 1 exactly).

    lognormal: ``exp(s(t) n)``; power_law / pcm: ``((t + t0) / t0)^(-nu)`` with nu per device,
    evaluated by drift law ``drift_law`` (``drift_power``).
    The per-device draws come from one stream, so drift at any t is one consistent trajectory. ``g_target``: the
    targets (the PCM and HERMES laws take nu's statistics there; default g_prog); ``index``: the device of its cell.
    """
    law = device.drift
    t0 = device.t0_s
    if not drifts(device, t_s):
        return None
    z = ops.f64(device_normals(seed, rng.PURPOSE_DRIFT, g_prog.shape, index, first, ops))
    if isinstance(law, LogNormalDrift):
        s = law.sigma + law.sigma_per_decade * np.log10((t_s + t0) / t0)
        return ops.exp(float(s) * z)
    if isinstance(law, PowerLawDrift):
        nu = ops.maximum(law.nu_mean + law.nu_std * z, 0.0)
    elif isinstance(law, PCMDrift):
        mean, std = pcm_drift_moments(_exponent_conductance(law, g_prog, g_target), device.g_max_us, ops)
        nu = law.scale * ops.abs(mean + std * z)
    elif isinstance(law, HermesDrift):
        mean, std = chiplaws.hermes_drift_moments(g_prog if g_target is None else g_target, device.g_max_us, law.fit, ops)
        nu = law.scale * ops.abs(mean + std * z)
    else:
        raise TypeError(f"unknown drift model {law!r}")
    return drift_power((t_s + t0) / t0, -nu, drift_law, ops)


def _exponent_conductance(law: PCMDrift, g_prog: np.ndarray, g_target: np.ndarray | None) -> np.ndarray:
    """The conductance the PCM law takes nu's statistics at: the target, or (``exponent_from: programmed``) G_prog."""
    return g_prog if law.exponent_from == "programmed" or g_target is None else g_target


def drifts(device: DeviceConfig, t_s: float) -> bool:
    """Whether conductances at t_s differ from the programmed ones (power-law laws start at 1, the relaxation and
    log-time laws at t = 0)."""
    law = device.drift
    if isinstance(law, (RelaxationDrift, LogTimeDrift)):
        return t_s > 0
    return not (isinstance(law, NoDrift) or (isinstance(law, (PowerLawDrift, PCMDrift, HermesDrift)) and (t_s + device.t0_s) / device.t0_s == 1.0))


def pcm_drift_moments(g: np.ndarray, g_max: float, ops=NUMPY_OPS) -> tuple[np.ndarray, np.ndarray]:
    """Mean and device-to-device std of the drift exponent in IBM's PCM model for conductance g (uS)."""
    log_gh = ops.log(ops.maximum(ops.f64(g) / g_max, 1e-7))
    return ops.clip(-0.0155 * log_gh + 0.0244, 0.049, 0.1), ops.clip(-0.0125 * log_gh - 0.0059, 0.008, 0.045)


def drifted(g_prog: np.ndarray, stuck: np.ndarray, device: DeviceConfig, t_s: float, seed: int,
            g_target: np.ndarray | None = None, index: int = 0, drift_law: int = DRIFT_LAW, ops=NUMPY_OPS) -> np.ndarray:  # fmt: skip
    """Conductances t_s seconds after programming (float32) under ``drift_law`` (``DRIFT_LAW``); stuck devices do
    not drift. ``g_target``: the targets (laws whose draws depend on them; default g_prog); ``index``: the device of
    its unit cell (its own stream)."""
    if t_s < 0 or not np.isfinite(t_s):
        raise ValueError(f"drift time must be a finite number of seconds >= 0, got {t_s}")
    if not drifts(device, t_s):
        return ops.copy(g_prog)
    targets = g_prog if g_target is None else g_target

    def piece(first: int, g0: np.ndarray, s0: np.ndarray, t0: np.ndarray) -> tuple[np.ndarray]:
        return (_drifted_pairs(g0, s0, device, t_s, seed, first, t0, index, drift_law, ops),)

    return ops.map_pairs(piece, [g_prog, stuck, targets], [np.float32])[0]


def _drifted_pairs(g_prog: np.ndarray, stuck: np.ndarray, device: DeviceConfig, t_s: float, seed: int, first: int,
                   g_target: np.ndarray | None = None, index: int = 0, drift_law: int = DRIFT_LAW, ops=NUMPY_OPS) -> np.ndarray:  # fmt: skip
    law = device.drift
    g_target = g_prog if g_target is None else g_target
    if isinstance(law, (RelaxationDrift, LogTimeDrift)):  # additive laws
        z = device_normals(seed, rng.PURPOSE_DRIFT, g_prog.shape, index, first, ops)
        g = chiplaws.additive_drift(g_prog, g_target, z, law, device, t_s, ops)
        return ops.where(stuck != 0, g_prog, g)
    if isinstance(law, (PowerLawDrift, PCMDrift)):  # drift_factor, fused
        z = device_normals(seed, rng.PURPOSE_DRIFT, g_prog.shape, index, first, ops)
        if isinstance(law, PCMDrift):
            g_law = _exponent_conductance(law, g_prog, g_target)
            # the log to its own buffer: written in place, the next pass ran 3x slower
            exponents = ops.pcm_negative_exponents(ops.log(ops.pcm_log_arguments(g_law, float(device.g_max_us))), z, float(law.scale))
        else:
            exponents = ops.power_law_negative_exponents(z, float(law.nu_mean), float(law.nu_std))
        factor = drift_power((t_s + device.t0_s) / device.t0_s, exponents, drift_law, ops)
    else:
        factor = drift_factor(g_prog, device, t_s, seed, first, g_target, index, drift_law, ops).reshape(-1)
    return ops.drifted(g_prog, stuck, factor)


def read_noise_parts(device: DeviceConfig, time: str) -> list:
    """The read-noise terms of ``device`` with time character ``time`` (per_read or per_epoch)."""
    noise = device.read_noise
    parts = noise.parts if isinstance(noise, CombinedReadNoise) else [noise]
    return [part for part in parts if not isinstance(part, NoReadNoise) and part.time == time]


def read_noise_is_constant(device: DeviceConfig) -> bool:
    """True when every device has the same per-read noise std (no conductance dependence)."""
    return all(isinstance(part, AdditiveReadNoise) for part in read_noise_parts(device, "per_read"))


def read_noise_std(g: np.ndarray, device: DeviceConfig, t_s: float, g_prog: np.ndarray | None = None,
                   time: str = "per_read", ops=NUMPY_OPS) -> np.ndarray:  # fmt: skip
    """Std (uS, float32) of the ``time`` (per_read / per_epoch) read noise of every device with
    conductance g now, t_s after programming, programmed to ``g_prog`` (default: g).

    additive: sigma; proportional: sigma |G|; current: sigma sqrt(g_max |G|); pcm: |G| Q(g_prog) sqrt(ln((t + t0 + t_read) / (2 t_read)));
    the measured chips: ``chiplaws``.
    Independent terms of one time character add in variance.
    """
    parts = read_noise_parts(device, time)
    if not parts:
        return ops.full_like(g, 0.0)
    if len(parts) == 1 and isinstance(parts[0], AdditiveReadNoise):
        return ops.full_like(g, parts[0].sigma)
    g_prog = g if g_prog is None else g_prog
    if g.ndim >= 2 and g.shape[0] == 2:
        return ops.map_pairs(lambda _, g0, p0: (_read_noise_variance(parts, g0, device, t_s, p0, ops),), [g, g_prog], [np.float32])[0]
    return _read_noise_variance(parts, g, device, t_s, g_prog, ops)


def _read_noise_variance(parts: list, g: np.ndarray, device: DeviceConfig, t_s: float, g_prog: np.ndarray, ops=NUMPY_OPS) -> np.ndarray:
    """sqrt of the summed variance of ``parts`` (float32)."""
    variance = ops.zeros(g.shape)
    for noise in parts:
        term = _term_std(noise, g, device, t_s, g_prog, ops)
        variance += term * term
    return ops.f32(ops.sqrt(variance))


def _term_std(noise, g: np.ndarray, device: DeviceConfig, t_s: float, g_prog: np.ndarray, ops=NUMPY_OPS) -> np.ndarray:
    if isinstance(noise, AdditiveReadNoise):
        return ops.full(g.shape, noise.sigma)
    if isinstance(noise, ProportionalReadNoise):
        return noise.sigma * ops.abs(ops.f64(g))
    if isinstance(noise, CurrentReadNoise):
        return noise.sigma * ops.sqrt(device.g_max_us * ops.abs(ops.f64(g)))
    if isinstance(noise, PCMReadNoise):
        return noise.scale * ops.abs(ops.f64(g)) * pcm_read_relative_std(noise, g_prog, device, t_s, ops)
    if isinstance(noise, HermesReadNoise):
        return chiplaws.hermes_read_std(noise, g, g_prog, device, t_s, ops)
    if isinstance(noise, LogConductanceReadNoise):
        return chiplaws.log_conductance_read_std(noise, g, t_s, ops)
    raise TypeError(f"unknown read-noise model {noise!r}")


def pcm_read_relative_std(noise: PCMReadNoise, g_prog: np.ndarray, device: DeviceConfig, t_s: float, ops=NUMPY_OPS) -> np.ndarray:
    """IBM PCM 1/f read noise relative to |G(t)| (float64): Q(g) sqrt(ln((t + t0 + t_read) / (2 t_read))),
    with Q of the programmed conductance g = |G_prog| / g_max: aihwkit's PCMLikeNoiseModel computes Q
    from g_prog, not from the drifted G(t), whose lower g would raise Q by (G_prog / G(t))^0.65."""
    gh = ops.abs(ops.f64(g_prog)) / device.g_max_us
    q = ops.minimum(noise.q_coeff / ops.maximum(ops.power(gh, noise.q_exponent), 1e-3), noise.q_max)
    return q * float(pcm_read_time_factor(noise, device, t_s))


def pcm_read_time_factor(noise: PCMReadNoise, device: DeviceConfig, t_s: float) -> np.float64:
    """sqrt(ln((t + t0 + t_read) / (2 t_read))): the time dependence of the PCM read noise."""
    t_read = noise.t_read_s
    return np.sqrt(np.log((t_s + device.t0_s + t_read) / (2 * t_read)))


def epoch_conductances(g: np.ndarray, g_prog: np.ndarray, device: DeviceConfig, t_s: float, seed: int,
                       epoch: int, index: int = 0, ops=NUMPY_OPS) -> np.ndarray:  # fmt: skip
    """The conductances that every read of read epoch ``epoch`` sees (float32, uS):
    ``max(0, G + std_epoch * n)``, n ~ N(0, 1) per device drawn from (seed, epoch), with the std of
    the per_epoch read-noise terms at t_s; G itself when there are none. ``index``: the device of its unit cell."""
    parts = read_noise_parts(device, "per_epoch")
    if not parts:
        return g

    time_factors = [pcm_read_time_factor(noise, device, t_s) if isinstance(noise, PCMReadNoise) else 0.0 for noise in parts]
    stream = epoch + (index << 32)  # device 0 of a cell: the stream of a one-device cell

    def piece(first: int, g0: np.ndarray, p0: np.ndarray) -> tuple[np.ndarray]:
        z = device_normals(seed, rng.PURPOSE_READ_EPOCH, g0.shape, stream, first, ops)
        return (_epoch_pairs(g0, p0, z, parts, time_factors, device.g_max_us, device, t_s, ops),)

    return ops.map_pairs(piece, [g, g_prog], [np.float32])[0]


def _epoch_pairs(g: np.ndarray, g_prog: np.ndarray, z: np.ndarray, parts: list, time_factors: list, g_max: float,
                 device: DeviceConfig | None = None, t_s: float = 0.0, ops=NUMPY_OPS) -> np.ndarray:  # fmt: skip
    """``max(G + std_epoch * z, 0)`` of a piece (float32): ``read_noise_std`` fused, its powers by NumPy (``ops.power``)."""
    variance = ops.zeros((2 * g.shape[1],))
    gh, power = None, variance[:0]
    zero_power = 0.0
    for noise, time_factor in zip(parts, time_factors):
        if isinstance(noise, PCMReadNoise):
            if gh is None:
                gh = ops.pcm_read_g(g_prog, float(g_max))
            power = ops.power(gh, noise.q_exponent)  # NumPy's pow defines the bits; 0s stand apart (pcm_read_g)
            zero_power = float((np.zeros(1) ** noise.q_exponent)[0])
            law = (lawkernels.READ_PCM, noise.scale, noise.q_coeff, noise.q_max, float(time_factor))
        elif isinstance(noise, ProportionalReadNoise):
            law = (lawkernels.READ_PROPORTIONAL, noise.sigma, 0.0, 0.0, 0.0)
        elif isinstance(noise, AdditiveReadNoise):
            law = (lawkernels.READ_ADDITIVE, noise.sigma, 0.0, 0.0, 0.0)
        else:  # the laws of the measured chips, as array expressions (chiplaws)
            term = _term_std(noise, g, device, t_s, g_prog, ops).reshape(-1)
            variance += term * term
            continue
        variance = ops.add_read_variance(g, g_prog, *law, power, zero_power, variance)
    return ops.read_epoch(g, z, variance)
