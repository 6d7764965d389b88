"""The device laws of the measured chips (HERMES, NeuRRAM, IBM CMO/HfOx ReRAM), as NumPy functions over
conductance arrays in uS (docs/physics.md §2-5, fitted in aihwkit 1.1.0's ``aihwkit/inference/noise/hermes.py``
and ``reram.py``). Each is element-wise: ``device`` calls them per piece of device pairs with the piece's normals.
"""

from __future__ import annotations

import numpy as np

_ZERO_CLIP = 1e-7  # aihwkit's floor of g / g_max before a log


def polynomial(x: np.ndarray, coefficients: list[float]) -> np.ndarray:
    """sum_i c_i x^i (float64), by powers of x in order, as aihwkit's ``_apply_poly``."""
    total = np.full(x.shape, float(coefficients[0]))
    power = np.ones_like(x)
    for c in coefficients[1:]:
        power = power * x
        total = total + power * c
    return total


def polynomial_write_std(g_target: np.ndarray, noise, g_max: float, cell_devices: int) -> np.ndarray:
    """std (uS) = scale * (g_max / g_ref) * |poly(x)|; a fit of an N-device cell: its g_max is N g_max, and each
    device gets the cell's std / sqrt(N) (x = G_target / g_max is the same for a device and its cell)."""
    x = g_target / g_max if noise.variable == "normalized" else g_target
    cell = noise.fitted_on == "cell"
    g_range = cell_devices * g_max if cell else g_max
    ratio = 1.0 if noise.g_max_reference_us is None else g_range / noise.g_max_reference_us
    share = 1.0 / np.sqrt(cell_devices) if cell else 1.0
    return noise.scale * ratio * share * np.abs(polynomial(x, noise.coefficients))


def hermes_drift_moments(g: np.ndarray, g_max: float, fit: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of HERMES's drift exponent at conductance g (uS), ``HermesNoiseModel.generate_drift_coefficients``:
    mu = clip(-0.0387 ln x - 0.0182, 0.072, 0.13) for x < 0.0945, else -0.0436 x^2 - 0.0126 x + 0.0736; sd piecewise
    by the fit (one device: break at 0.3039; two devices: 0.3055), x = max(|g| / g_max, 1e-7)."""
    x = np.maximum(np.abs(g.astype(np.float64)) / g_max, _ZERO_CLIP)
    log_x = np.log(x)
    mean = np.where(x < 0.0945, np.clip(-0.0387 * log_x - 0.0182, 0.0720, 0.13), -0.0436 * x**2 - 0.0126 * x + 0.0736)
    if fit == "one_device":
        std = np.where(x < 0.3039, np.clip(-0.0120 * log_x - 0.0023, 0.0124, 0.04), -0.0165 * x**2 + 0.0116 * x + 0.0104)
    else:
        std = np.where(x < 0.3055, np.clip(-0.0117 * log_x - 0.0057, 0.0091, 0.04), -0.0118 * x**2 + 0.0093 * x + 0.0073)
    return mean, std


def hermes_q(g_prog: np.ndarray, g_max: float, fit: str) -> np.ndarray:
    """HERMES's 1/f read-noise factor Q at the programmed conductance (``apply_drift_noise_to_conductance``),
    x = |G_prog| / g_max: one device: clip(-0.0078 ln x + 0.0038, 0.0179, 0.04) for x < 0.1591, else
    0.0664 x^3 - 0.1352 x^2 + 0.0768 x + 0.0088; two devices: clip(-0.0117 ln x - 0.0069, 0.015, 0.04) for
    x < 0.16, else 0.0069 x^3 - 0.0280 x^2 + 0.0211 x + 0.0123."""
    x = np.abs(g_prog.astype(np.float64)) / g_max
    with np.errstate(divide="ignore"):  # x = 0: the clip's upper bound, as aihwkit's clamp of log(0) = -inf
        log_x = np.log(x)
    if fit == "one_device":
        return np.where(x < 0.1591, np.clip(-0.0078 * log_x + 0.0038, 0.0179, 0.04), 0.0664 * x**3 - 0.1352 * x**2 + 0.0768 * x + 0.0088)
    return np.where(x < 0.16, np.clip(-0.0117 * log_x - 0.0069, 0.015, 0.04), 0.0069 * x**3 - 0.0280 * x**2 + 0.0211 * x + 0.0123)


def hermes_read_std(noise, g: np.ndarray, g_prog: np.ndarray, device, t_s: float) -> np.ndarray:
    """std (uS) = scale * |G(t)| * Q(G_prog) * sqrt(ln((t + t0 + t_read) / (2 t_read)))."""
    time_factor = np.sqrt(np.log((t_s + device.t0_s + noise.t_read_s) / (2 * noise.t_read_s)))
    return noise.scale * np.abs(g.astype(np.float64)) * hermes_q(g_prog, device.g_max_us, noise.fit) * time_factor


def log_conductance_read_std(noise, g: np.ndarray, t_s: float) -> np.ndarray:
    """std (uS) = scale * k * |log10(G(t))| * sqrt(max(ln((t + t_read) / (2 t_read)), 0)); 0 where G <= 0 (aihwkit
    takes log10 of a non-positive conductance to NaN)."""
    time_factor = np.sqrt(max(np.log((t_s + noise.t_read_s) / (2 * noise.t_read_s)), 0.0))
    g64 = g.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        decades = np.where(g64 > 0, np.abs(np.log10(g64)), 0.0)
    return noise.scale * noise.k * decades * time_factor


def relaxation_spread(g_target: np.ndarray, law, g_max: float, t_s: float) -> np.ndarray:
    """The fitted spread s(t) (uS) around the target: each published time's |poly(G_target / g_max)|, interpolated
    linearly in log10 t between the published times, held beyond them, times scale * g_max / g_ref."""
    x = g_target.astype(np.float64) / g_max
    times = np.log10(np.asarray(law.times_s))
    where = float(np.clip(np.log10(t_s), times[0], times[-1])) if t_s > 0 else float(times[0])
    k = int(np.searchsorted(times, where, side="right")) - 1
    k = min(max(k, 0), len(times) - 1)
    spread = np.abs(polynomial(x, law.coefficients[k]))
    if k + 1 < len(times) and where > times[k]:
        w = (where - times[k]) / (times[k + 1] - times[k])
        spread = (1 - w) * spread + w * np.abs(polynomial(x, law.coefficients[k + 1]))
    ratio = 1.0 if law.g_max_reference_us is None else g_max / law.g_max_reference_us
    return law.scale * ratio * spread


def additive_drift(g_prog: np.ndarray, g_target: np.ndarray, z: np.ndarray, law, device, t_s: float) -> np.ndarray:
    """G(t) (float32) under the additive laws, z the device's drift normals:
    relaxation: ``max(0, G_prog + sqrt(max(s(t)^2 - v, 0)) z)``, v = s(t_1)^2 (``starts_from: first_fit``) or each
    device's squared programming error (``programmed``);
    log_time: ``clip(G_prog + scale (m L + (s1 L + s0) z), g_min, g_max)``, L = max(ln t, 0)."""
    z64 = z.astype(np.float64)
    if law.kind == "relaxation":
        grown = relaxation_spread(g_target, law, device.g_max_us, t_s) ** 2
        if law.starts_from == "programmed":
            first = (g_prog.astype(np.float64) - g_target) ** 2
        else:
            first = relaxation_spread(g_target, law, device.g_max_us, law.times_s[0]) ** 2
        g = g_prog + np.sqrt(np.maximum(grown - first, 0.0)) * z64
        return np.maximum(g, 0.0).astype(np.float32)
    decades = max(np.log(t_s), 0.0)
    g = g_prog + law.scale * (law.mean_per_ln_s * decades + (law.std_per_ln_s * decades + law.std_us) * z64)
    return np.clip(g, device.g_min_us, device.g_max_us).astype(np.float32)
