"""The device laws of the measured chips (HERMES, NeuRRAM, IBM CMO/HfOx ReRAM), as NumPy functions over
conductance arrays in uS (docs/physics.md §2-5, fitted in aihwkit 1.1.0's ``aihwkit/inference/noise/hermes.py``
and ``reram.py``). Each is element-wise: ``device`` calls them per piece of device pairs with the piece's normals,
and ``ops`` (``lawops``) evaluates them on the arrays' backend (NumPy's arrays, or a torch device's tensors).
"""

from __future__ import annotations

import numpy as np

from .lawops import NUMPY_OPS

_ZERO_CLIP = 1e-7  # aihwkit's floor of g / g_max before a log


def polynomial(x: np.ndarray, coefficients: list[float], ops=NUMPY_OPS) -> np.ndarray:
    """sum_i c_i x^i (float64 x), by powers of x in order, as aihwkit's ``_apply_poly``."""
    total = ops.full_like(x, float(coefficients[0]))
    power = ops.full_like(x, 1.0)
    for c in coefficients[1:]:
        power = power * x
        total = total + power * c
    return total


def polynomial_write_std(g_target: np.ndarray, noise, g_max: float, cell_devices: int, ops=NUMPY_OPS) -> np.ndarray:
    """std (uS) = scale * (g_max / g_ref) * |poly(x)|; a fit of an N-device cell: its g_max is N g_max, and each
    device gets the cell's std / sqrt(N) (x = G_target / g_max is the same for a device and its cell)."""
    x = g_target / g_max if noise.variable == "normalized" else g_target
    cell = noise.fitted_on == "cell"
    g_range = cell_devices * g_max if cell else g_max
    ratio = 1.0 if noise.g_max_reference_us is None else g_range / noise.g_max_reference_us
    share = 1.0 / np.sqrt(cell_devices) if cell else 1.0
    return noise.scale * ratio * share * ops.abs(polynomial(ops.f64(x), noise.coefficients, ops))


def hermes_drift_moments(g: np.ndarray, g_max: float, fit: str, ops=NUMPY_OPS) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of HERMES's drift exponent at conductance g (uS), ``HermesNoiseModel.generate_drift_coefficients``:
    mu = clip(-0.0387 ln x - 0.0182, 0.072, 0.13) for x < 0.0945, else -0.0436 x^2 - 0.0126 x + 0.0736; sd piecewise
    by the fit (one device: break at 0.3039; two devices: 0.3055), x = max(|g| / g_max, 1e-7)."""
    x = ops.maximum(ops.abs(ops.f64(g)) / g_max, _ZERO_CLIP)
    log_x = ops.log(x)
    x2 = x * x
    mean = ops.where(x < 0.0945, ops.clip(-0.0387 * log_x - 0.0182, 0.0720, 0.13), -0.0436 * x2 - 0.0126 * x + 0.0736)
    if fit == "one_device":
        std = ops.where(x < 0.3039, ops.clip(-0.0120 * log_x - 0.0023, 0.0124, 0.04), -0.0165 * x2 + 0.0116 * x + 0.0104)
    else:
        std = ops.where(x < 0.3055, ops.clip(-0.0117 * log_x - 0.0057, 0.0091, 0.04), -0.0118 * x2 + 0.0093 * x + 0.0073)
    return mean, std


def hermes_q(g_prog: np.ndarray, g_max: float, fit: str, ops=NUMPY_OPS) -> np.ndarray:
    """HERMES's 1/f read-noise factor Q at the programmed conductance (``apply_drift_noise_to_conductance``),
    x = |G_prog| / g_max: one device: clip(-0.0078 ln x + 0.0038, 0.0179, 0.04) for x < 0.1591, else
    0.0664 x^3 - 0.1352 x^2 + 0.0768 x + 0.0088; two devices: clip(-0.0117 ln x - 0.0069, 0.015, 0.04) for
    x < 0.16, else 0.0069 x^3 - 0.0280 x^2 + 0.0211 x + 0.0123."""
    x = ops.abs(ops.f64(g_prog)) / g_max
    with np.errstate(divide="ignore"):  # x = 0: the clip's upper bound, as aihwkit's clamp of log(0) = -inf
        log_x = ops.log(x)
    x2, x3 = x * x, ops.power(x, 3)  # NumPy's x**2 is x * x; its x**3 is pow
    if fit == "one_device":
        return ops.where(x < 0.1591, ops.clip(-0.0078 * log_x + 0.0038, 0.0179, 0.04), 0.0664 * x3 - 0.1352 * x2 + 0.0768 * x + 0.0088)
    return ops.where(x < 0.16, ops.clip(-0.0117 * log_x - 0.0069, 0.015, 0.04), 0.0069 * x3 - 0.0280 * x2 + 0.0211 * x + 0.0123)


def hermes_read_std(noise, g: np.ndarray, g_prog: np.ndarray, device, t_s: float, ops=NUMPY_OPS) -> np.ndarray:
    """std (uS) = scale * |G(t)| * Q(G_prog) * sqrt(ln((t + t0 + t_read) / (2 t_read)))."""
    time_factor = np.sqrt(np.log((t_s + device.t0_s + noise.t_read_s) / (2 * noise.t_read_s)))
    return noise.scale * ops.abs(ops.f64(g)) * hermes_q(g_prog, device.g_max_us, noise.fit, ops) * float(time_factor)


def log_conductance_read_std(noise, g: np.ndarray, t_s: float, ops=NUMPY_OPS) -> np.ndarray:
    """std (uS) = scale * k * |log10(G(t))| * sqrt(max(ln((t + t_read) / (2 t_read)), 0)); 0 where G <= 0 (aihwkit
    takes log10 of a non-positive conductance to NaN)."""
    time_factor = float(np.sqrt(max(np.log((t_s + noise.t_read_s) / (2 * noise.t_read_s)), 0.0)))
    g64 = ops.f64(g)
    with np.errstate(divide="ignore", invalid="ignore"):
        decades = ops.where(g64 > 0, ops.abs(ops.log10(g64)), 0.0)
    return noise.scale * noise.k * decades * time_factor


def relaxation_spread(g_target: np.ndarray, law, g_max: float, t_s: float, ops=NUMPY_OPS) -> np.ndarray:
    """The fitted spread s(t) (uS) around the target: each published time's |poly(G_target / g_max)|, interpolated
    linearly in log10 t between the published times, held beyond them, times scale * g_max / g_ref."""
    x = ops.f64(g_target) / g_max
    times = np.log10(np.asarray(law.times_s))
    where = float(np.clip(np.log10(t_s), times[0], times[-1])) if t_s > 0 else float(times[0])
    k = int(np.searchsorted(times, where, side="right")) - 1
    k = min(max(k, 0), len(times) - 1)
    spread = ops.abs(polynomial(x, law.coefficients[k], ops))
    if k + 1 < len(times) and where > times[k]:
        w = (where - times[k]) / (times[k + 1] - times[k])
        spread = (1 - w) * spread + w * ops.abs(polynomial(x, law.coefficients[k + 1], ops))
    ratio = 1.0 if law.g_max_reference_us is None else g_max / law.g_max_reference_us
    return law.scale * ratio * spread


def additive_drift(g_prog: np.ndarray, g_target: np.ndarray, z: np.ndarray, law, device, t_s: float, ops=NUMPY_OPS) -> np.ndarray:
    """G(t) (float32) under the additive laws, z the device's drift normals:
    relaxation: ``max(0, G_prog + sqrt(max(s(t)^2 - v, 0)) z)``, v = s(t_1)^2 (``starts_from: first_fit``) or each
    device's squared programming error (``programmed``);
    log_time: ``clip(G_prog + scale (m L + (s1 L + s0) z), g_min, g_max)``, L = max(ln t, 0)."""
    z64 = ops.f64(z)
    if law.kind == "relaxation":
        grown = _squared(relaxation_spread(g_target, law, device.g_max_us, t_s, ops))
        if law.starts_from == "programmed":
            first = _squared(ops.f64(g_prog) - g_target)
        else:
            first = _squared(relaxation_spread(g_target, law, device.g_max_us, law.times_s[0], ops))
        g = g_prog + ops.sqrt(ops.maximum(grown - first, 0.0)) * z64
        return ops.f32(ops.maximum(g, 0.0))
    decades = float(max(np.log(t_s), 0.0))
    g = g_prog + law.scale * (law.mean_per_ln_s * decades + (law.std_per_ln_s * decades + law.std_us) * z64)
    return ops.f32(ops.clip(g, device.g_min_us, device.g_max_us))


def _squared(a: np.ndarray) -> np.ndarray:
    """a * a: NumPy's a ** 2, one rounding on every backend."""
    return a * a
