"""Device physics as functions over conductance arrays (docs/physics.md §2-5).

Conductance arrays are (2, n_in, n_out) float32 in uS, [0] = G+ and [1] = G-. Every random draw
comes from ``rng`` streams keyed by (seed, purpose); device (k, i, j) uses counter i * n_out + j
(the pair's first normal for G+, the second for G-), so a draw does not depend on the tiling.

Each law is written once, as a function over any array namespace (NumPy, or torch on any device:
``array_api_compat``) given its standard normals or uniforms: ``write_noise_std``, ``written``,
``stuck_codes``, ``stuck_conductances``, ``drift_factor_from``, ``drifted_from``, ``read_noise_std``,
``read_epoch_from``. Every backend evaluates these same expressions, each backend drawing the same
numbers (``rng`` here, ``crossbar_torch.rng`` for torch). On the NumPy side the whole-array
functions (``program``, ``drifted``, ``epoch_conductances``, ``read_noise_std``) evaluate them in
pieces of device pairs on several threads (``pieces.map_pairs``), through the fused Numba twins of
``lawkernels`` where that is faster: the same values, bit for bit.
"""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace, is_numpy_namespace

from ...config import (
    AbsoluteWriteNoise,
    AdditiveReadNoise,
    CombinedReadNoise,
    DeviceConfig,
    LogNormalDrift,
    NoDrift,
    NoReadNoise,
    NoWriteNoise,
    PCMDrift,
    PCMReadNoise,
    PCMWriteNoise,
    PowerLawDrift,
    ProportionalReadNoise,
    ProportionalWriteNoise,
    StuckAtFaults,
)
from . import lawkernels, pieces, rng

STUCK_ON = 1
STUCK_OFF = -1


def device_normals(seed: int, purpose: int, shape: tuple[int, ...], index: int = 0, first: int = 0) -> np.ndarray:
    """Standard normals, float32, one per device of a (2, ...) array (stream index ``index``) whose
    first device pair is pair ``first`` of its matrix (a piece of it; 0 for a whole matrix)."""
    pairs = int(np.prod(shape[1:]))
    return rng.normals(rng.stream_key(seed, purpose, index), pairs, first, serial=True).reshape(shape)


def write_noise_std(g_target, noise, g_max: float):
    """Std (uS, float64) of the programming error of every device, same shape as ``g_target`` (any array)."""
    xp = array_namespace(g_target)
    g = xp.astype(g_target, xp.float64)
    if isinstance(noise, NoWriteNoise):
        return xp.zeros_like(g)
    if isinstance(noise, AbsoluteWriteNoise):
        return xp.full_like(g, noise.sigma)
    if isinstance(noise, ProportionalWriteNoise):
        return noise.sigma * xp.abs(g)
    if isinstance(noise, PCMWriteNoise):
        gh = g / g_max
        return noise.scale * xp.maximum(noise.c0 + noise.c1 * gh + noise.c2 * gh * gh, 0.0)
    raise TypeError(f"unknown write-noise model {noise!r}")


def written(g_target, std, z):
    """Programmed conductances ``max(G_target + float32(std * z), 0)`` (float32, uS): targets float32, std
    (``write_noise_std``) float64, z the devices' write normals (float32)."""
    xp = array_namespace(g_target)
    return xp.maximum(g_target + xp.astype(std * xp.astype(z, xp.float64), xp.float32), 0.0)


def stuck_codes(u, faults: StuckAtFaults):
    """int8 codes from the devices' fault uniforms u (float64 in [0, 1)): STUCK_ON where u < p_on,
    STUCK_OFF where p_on <= u < p_on + p_off, else 0."""
    xp = array_namespace(u)
    on = u < faults.p_on
    off = (u >= faults.p_on) & (u < faults.p_on + faults.p_off)
    return xp.astype(on, xp.int8) * STUCK_ON + xp.astype(off, xp.int8) * STUCK_OFF


def stuck_conductances(g, stuck, device: DeviceConfig):
    """g (float32) with stuck devices at g_max (on) or g_min (off), whatever was written."""
    xp = array_namespace(g)
    return xp.where(stuck == STUCK_ON, device.g_max_us, xp.where(stuck == STUCK_OFF, device.g_min_us, g))


def has_faults(device: DeviceConfig) -> bool:
    return device.faults.p_on > 0 or device.faults.p_off > 0


def stuck_faults(faults: StuckAtFaults, shape: tuple[int, ...], seed: int, first: int = 0) -> np.ndarray:
    """int8 array: STUCK_ON with probability p_on, STUCK_OFF with p_off, else 0; per device of a
    (2, ...) array whose first pair is pair ``first`` of its matrix."""
    if faults.p_on == 0 and faults.p_off == 0:
        return np.zeros(shape, np.int8)
    u = rng.uniforms(rng.stream_key(seed, rng.PURPOSE_FAULT), int(np.prod(shape[1:])), first, serial=True).reshape(shape)
    return stuck_codes(u, faults)


def program(g_target: np.ndarray, device: DeviceConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Write ``g_target`` with programming error, then apply stuck-at faults.

    ``G = max(0, G_target + std(G_target) * n)``; stuck devices sit at g_max (on) or g_min (off).
    Returns (programmed conductances float32, stuck codes int8).
    """
    g, stuck = pieces.map_pairs(lambda first, target: _program_pairs(target, device, seed, first), [g_target], [np.float32, np.int8])
    return g, stuck


def _program_pairs(g_target: np.ndarray, device: DeviceConfig, seed: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.empty(g_target.shape, np.float32)
    noise = device.write_noise
    if isinstance(noise, NoWriteNoise):
        g[:] = g_target
    else:
        kind, c0, c1, c2, scale = _write_law(noise)
        lawkernels.written(lawkernels.rows(g_target), kind, c0, c1, c2, scale, float(device.g_max_us), rng.stream_key(seed, rng.PURPOSE_WRITE),
                           np.uint64(first), lawkernels.rows(g))  # fmt: skip
    stuck = stuck_faults(device.faults, g_target.shape, seed, first)
    if has_faults(device):
        g = stuck_conductances(g, stuck, device)
    return g, stuck


def _write_law(noise) -> tuple[int, float, float, float, float]:
    """(kind, c0, c1, c2, scale) of a write-noise law for ``lawkernels.written``."""
    if isinstance(noise, AbsoluteWriteNoise):
        return lawkernels.WRITE_ABSOLUTE, float(noise.sigma), 0.0, 0.0, 1.0
    if isinstance(noise, ProportionalWriteNoise):
        return lawkernels.WRITE_PROPORTIONAL, float(noise.sigma), 0.0, 0.0, 1.0
    if isinstance(noise, PCMWriteNoise):
        return lawkernels.WRITE_PCM, float(noise.c0), float(noise.c1), float(noise.c2), float(noise.scale)
    raise TypeError(f"unknown write-noise model {noise!r}")


def drift_factor(g_prog: np.ndarray, device: DeviceConfig, t_s: float, seed: int, first: int = 0) -> np.ndarray | None:
    """Multiplicative drift ``G(t) / G_prog`` per device (float64) of a (2, ...) array whose first
    pair is pair ``first`` of its matrix, or None where it is 1 everywhere (no drift; power_law and
    pcm at t = 0, where 1^(-nu) = 1 exactly).

    lognormal: ``exp(s(t) n)``; power_law / pcm: ``((t + t0) / t0)^(-nu)`` with nu per device.
    The per-device draws come from one stream, so drift at any t is one consistent trajectory.
    """
    if not drifts(device, t_s):
        return None
    return drift_factor_from(device_normals(seed, rng.PURPOSE_DRIFT, g_prog.shape, first=first), g_prog, device, t_s)


def drift_factor_from(z, g_prog, device: DeviceConfig, t_s: float):
    """``drift_factor`` (float64, any array) from the devices' drift normals z (float32)."""
    xp = array_namespace(z)
    law = device.drift
    t0 = device.t0_s
    z = xp.astype(z, xp.float64)
    if isinstance(law, LogNormalDrift):
        s = law.sigma + law.sigma_per_decade * float(np.log10((t_s + t0) / t0))
        return xp.exp(s * z)
    if isinstance(law, PowerLawDrift):
        nu = xp.maximum(law.nu_mean + law.nu_std * z, 0.0)
    elif isinstance(law, PCMDrift):
        mean, std = pcm_drift_moments(g_prog, device.g_max_us)
        nu = law.scale * xp.abs(mean + std * z)
    else:
        raise TypeError(f"unknown drift model {law!r}")
    return ((t_s + t0) / t0) ** (-nu)


def drifted_from(g_prog, stuck, factor):
    """``float32(G_prog * factor)`` (any array), G_prog itself where a device is stuck."""
    xp = array_namespace(g_prog)
    return xp.where(stuck != 0, g_prog, xp.astype(g_prog * factor, xp.float32))


def drifts(device: DeviceConfig, t_s: float) -> bool:
    """Whether conductances at t_s differ from the programmed ones (power-law laws start at 1)."""
    law = device.drift
    return not (isinstance(law, NoDrift) or (isinstance(law, (PowerLawDrift, PCMDrift)) and (t_s + device.t0_s) / device.t0_s == 1.0))


def pcm_drift_moments(g, g_max: float):
    """Mean and device-to-device std (float64, any array) of the drift exponent in IBM's PCM model for conductance g (uS)."""
    xp = array_namespace(g)
    log_gh = xp.log(xp.maximum(xp.astype(g, xp.float64) / g_max, 1e-7))
    return xp.clip(-0.0155 * log_gh + 0.0244, 0.049, 0.1), xp.clip(-0.0125 * log_gh - 0.0059, 0.008, 0.045)


def drifted(g_prog: np.ndarray, stuck: np.ndarray, device: DeviceConfig, t_s: float, seed: int) -> np.ndarray:
    """Conductances t_s seconds after programming (float32); stuck devices do not drift."""
    if t_s < 0 or not np.isfinite(t_s):
        raise ValueError(f"drift time must be a finite number of seconds >= 0, got {t_s}")
    if not drifts(device, t_s):
        return g_prog.copy()
    (g,) = pieces.map_pairs(lambda first, g0, s0: (_drifted_pairs(g0, s0, device, t_s, seed, first),), [g_prog, stuck], [np.float32])
    return g


def _drifted_pairs(g_prog: np.ndarray, stuck: np.ndarray, device: DeviceConfig, t_s: float, seed: int, first: int) -> np.ndarray:
    law = device.drift
    if isinstance(law, (PowerLawDrift, PCMDrift)):  # drift_factor, fused
        z = lawkernels.rows(device_normals(seed, rng.PURPOSE_DRIFT, g_prog.shape, first=first))
        exponents = np.empty(g_prog.size, np.float64)
        if isinstance(law, PCMDrift):
            lawkernels.pcm_log_arguments(lawkernels.rows(g_prog), float(device.g_max_us), exponents)
            # the log to its own buffer: written in place, the next pass ran 3x slower
            lawkernels.pcm_negative_exponents(np.log(exponents), z, float(law.scale), exponents)
        else:
            lawkernels.power_law_negative_exponents(z, float(law.nu_mean), float(law.nu_std), exponents)
        factor = ((t_s + device.t0_s) / device.t0_s) ** exponents
    else:
        factor = drift_factor(g_prog, device, t_s, seed, first).reshape(-1)
    g = np.empty(g_prog.shape, np.float32)
    lawkernels.drifted(lawkernels.rows(g_prog), lawkernels.rows(stuck), factor, lawkernels.rows(g))
    return g


def read_noise_parts(device: DeviceConfig, time: str) -> list:
    """The read-noise terms of ``device`` with time character ``time`` (per_read or per_epoch)."""
    noise = device.read_noise
    parts = noise.parts if isinstance(noise, CombinedReadNoise) else [noise]
    return [part for part in parts if not isinstance(part, NoReadNoise) and part.time == time]


def read_noise_is_constant(device: DeviceConfig) -> bool:
    """True when every device has the same per-read noise std (no conductance dependence)."""
    return all(isinstance(part, AdditiveReadNoise) for part in read_noise_parts(device, "per_read"))


def read_noise_std(g, device: DeviceConfig, t_s: float, g_prog=None, time: str = "per_read"):
    """Std (uS, float32) of the ``time`` (per_read / per_epoch) read noise of every device with
    conductance g now (any array), t_s after programming, programmed to ``g_prog`` (default: g).

    additive: sigma; proportional: sigma |G|; pcm: |G| Q(g_prog) sqrt(ln((t + t0 + t_read) / (2 t_read))).
    Independent terms of one time character add in variance.
    """
    xp = array_namespace(g)
    parts = read_noise_parts(device, time)
    if not parts:
        return xp.zeros_like(g)
    if len(parts) == 1 and isinstance(parts[0], AdditiveReadNoise):
        return xp.full_like(g, parts[0].sigma)
    g_prog = g if g_prog is None else g_prog
    if is_numpy_namespace(xp) and g.ndim >= 2 and g.shape[0] == 2:
        return pieces.map_pairs(lambda _, g0, p0: (_read_noise_variance(parts, g0, device, t_s, p0),), [g, g_prog], [np.float32])[0]
    return _read_noise_variance(parts, g, device, t_s, g_prog)


def _read_noise_variance(parts: list, g, device: DeviceConfig, t_s: float, g_prog):
    """sqrt of the summed variance of ``parts`` (float32)."""
    xp = array_namespace(g)
    variance = xp.zeros_like(g, dtype=xp.float64)
    for noise in parts:
        variance += _term_std(noise, g, device, t_s, g_prog) ** 2
    return xp.astype(xp.sqrt(variance), xp.float32)


def _term_std(noise, g, device: DeviceConfig, t_s: float, g_prog):
    xp = array_namespace(g)
    if isinstance(noise, AdditiveReadNoise):
        return xp.full_like(g, noise.sigma, dtype=xp.float64)
    if isinstance(noise, ProportionalReadNoise):
        return noise.sigma * xp.abs(xp.astype(g, xp.float64))
    if isinstance(noise, PCMReadNoise):
        return noise.scale * xp.abs(xp.astype(g, xp.float64)) * pcm_read_relative_std(noise, g_prog, device, t_s)
    raise TypeError(f"unknown read-noise model {noise!r}")


def pcm_read_relative_std(noise: PCMReadNoise, g_prog, device: DeviceConfig, t_s: float):
    """IBM PCM 1/f read noise relative to |G(t)| (float64, any array): Q(g) sqrt(ln((t + t0 + t_read) / (2 t_read))),
    with Q of the programmed conductance g = |G_prog| / g_max: aihwkit's PCMLikeNoiseModel computes Q
    from g_prog, not from the drifted G(t), whose lower g would raise Q by (G_prog / G(t))^0.65."""
    xp = array_namespace(g_prog)
    gh = xp.abs(xp.astype(g_prog, xp.float64)) / device.g_max_us
    q = xp.minimum(noise.q_coeff / xp.maximum(gh**noise.q_exponent, 1e-3), noise.q_max)
    return q * float(pcm_read_time_factor(noise, device, t_s))


def pcm_read_time_factor(noise: PCMReadNoise, device: DeviceConfig, t_s: float) -> np.float64:
    """sqrt(ln((t + t0 + t_read) / (2 t_read))): the time dependence of the PCM read noise."""
    t_read = noise.t_read_s
    return np.sqrt(np.log((t_s + device.t0_s + t_read) / (2 * t_read)))


def epoch_conductances(g: np.ndarray, g_prog: np.ndarray, device: DeviceConfig, t_s: float, seed: int,
                       epoch: int) -> np.ndarray:  # fmt: skip
    """The conductances that every read of read epoch ``epoch`` sees (float32, uS):
    ``max(0, G + std_epoch * n)``, n ~ N(0, 1) per device drawn from (seed, epoch), with the std of
    the per_epoch read-noise terms at t_s; G itself when there are none."""
    parts = read_noise_parts(device, "per_epoch")
    if not parts:
        return g

    time_factors = [pcm_read_time_factor(noise, device, t_s) if isinstance(noise, PCMReadNoise) else 0.0 for noise in parts]

    def piece(first: int, g0: np.ndarray, p0: np.ndarray) -> tuple[np.ndarray]:
        z = device_normals(seed, rng.PURPOSE_READ_EPOCH, g0.shape, epoch, first)
        return (_epoch_pairs(g0, p0, z, parts, time_factors, device.g_max_us),)

    return pieces.map_pairs(piece, [g, g_prog], [np.float32])[0]


def read_epoch_from(g, std, z):
    """The conductances a read epoch sees, ``max(G + std * z, 0)`` (float32, any array): std of the per_epoch
    read noise (``read_noise_std``), z the devices' epoch normals."""
    xp = array_namespace(g)
    return xp.maximum(g + std * z, 0.0)


def _epoch_pairs(g: np.ndarray, g_prog: np.ndarray, z: np.ndarray, parts: list, time_factors: list, g_max: float) -> np.ndarray:
    """``max(G + std_epoch * z, 0)`` of a piece (float32): ``read_noise_std`` fused, its powers by NumPy."""
    rows, programmed = lawkernels.rows(g), lawkernels.rows(g_prog)
    variance = np.zeros(g.size, np.float64)
    gh = power = variance[:0]
    zero_power = 0.0
    for noise, time_factor in zip(parts, time_factors):
        if isinstance(noise, PCMReadNoise):
            if not len(gh):
                gh = np.empty(g.size, np.float64)
                lawkernels.pcm_read_g(programmed, float(g_max), gh)
            power = gh**noise.q_exponent  # NumPy's pow defines the bits; 0s stand apart (pcm_read_g)
            zero_power = float((np.zeros(1) ** noise.q_exponent)[0])
            law = (lawkernels.READ_PCM, noise.scale, noise.q_coeff, noise.q_max, time_factor)
        elif isinstance(noise, ProportionalReadNoise):
            law = (lawkernels.READ_PROPORTIONAL, noise.sigma, 0.0, 0.0, 0.0)
        elif isinstance(noise, AdditiveReadNoise):
            law = (lawkernels.READ_ADDITIVE, noise.sigma, 0.0, 0.0, 0.0)
        else:
            raise TypeError(f"unknown read-noise model {noise!r}")
        lawkernels.add_read_variance(rows, programmed, *law, power, zero_power, variance)
    out = np.empty(g.shape, np.float32)
    lawkernels.read_epoch(rows, lawkernels.rows(z), variance, lawkernels.rows(out))
    return out
