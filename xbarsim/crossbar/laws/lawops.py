"""The operations the device laws are written in, for NumPy arrays on the CPU: the Numba backend's law kernels.

``device``, ``chiplaws`` and ``cells`` select a law and its coefficients once, and evaluate it through an ``ops``
object: the element-wise functions their expressions call (``log``, ``where``, ``maximum``, ...), the stream
draws (``normals``, ``uniforms``, noise stream version 1), the fused kernels of the common laws (``written``,
``drifted``, ``read_epoch``, ..., ``lawkernels`` here), the program-and-verify loop, and how a whole array is
cut into pieces (``map_pairs``). ``NUMPY_OPS`` runs them on NumPy arrays (NumPy's ufuncs, Numba kernels, pieces
on several threads); the torch backend supplies the same operations on tensors of its device
(``crossbar_torch.lawops``), so one law is written once and gives the same bits on both.
A piece is (2, m) device pairs; the flat (2m,) buffers of the fused kernels hold device d at (d // m, d % m).
"""

from __future__ import annotations

import numpy as np

from . import irdrop, lawkernels, pieces, rng, verify


class NumpyOps:
    """The device laws' operations on NumPy arrays (float64 where the law computes in float64)."""

    name = "numpy"
    log, log10, exp, sqrt, abs = np.log, np.log10, np.exp, np.sqrt, np.abs  # ufuncs: not bound as methods
    maximum, minimum, power = np.maximum, np.minimum, np.power
    where, clip, stack, map_pairs = staticmethod(np.where), staticmethod(np.clip), staticmethod(np.stack), staticmethod(pieces.map_pairs)
    wire_sums = staticmethod(irdrop.wire_sums)  # A + B of one array's devices (wire resistance)

    @staticmethod
    def f64(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float64)

    @staticmethod
    def f32(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32)

    @staticmethod
    def full(shape: tuple[int, ...], value: float, dtype=np.float64) -> np.ndarray:
        return np.full(shape, value, dtype)

    @staticmethod
    def full_like(a: np.ndarray, value: float) -> np.ndarray:
        return np.full_like(a, value)

    @staticmethod
    def zeros(shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        return np.zeros(shape, dtype)

    @staticmethod
    def scaled_exp(a: np.ndarray, scale: float) -> np.ndarray:
        """exp(a * scale), float64, in ``a``'s memory."""
        np.multiply(a, scale, out=a)
        return np.exp(a, out=a)

    @staticmethod
    def copy(a: np.ndarray) -> np.ndarray:
        return a.copy()

    @staticmethod
    def any(a: np.ndarray) -> bool:
        return bool(np.any(a))

    @staticmethod
    def to_numpy(a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    @staticmethod
    def asarray(a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    @staticmethod
    def normals(key: np.uint64, n_pairs: int, first: int) -> np.ndarray:
        """(2, n_pairs) float32 normals of stream ``key``, counters first .. (serial: pieces run on several threads)."""
        return rng.normals(key, n_pairs, first, serial=True)

    @staticmethod
    def uniforms(key: np.uint64, n_pairs: int, first: int) -> np.ndarray:
        """(2, n_pairs) float64 uniforms of stream ``key``, counters first .."""
        return rng.uniforms(key, n_pairs, first, serial=True)

    @staticmethod
    def written(g_target: np.ndarray, kind: int, c0: float, c1: float, c2: float, scale: float, g_max: float, key: np.uint64,
                first: int) -> np.ndarray:  # fmt: skip
        """(2, m) float32: ``lawkernels.written`` of a piece."""
        return _filled(lawkernels.written, g_target.shape, np.float32, _rows(g_target), kind, c0, c1, c2, scale, g_max, key, np.uint64(first))

    @staticmethod
    def pcm_log_arguments(g: np.ndarray, g_max: float) -> np.ndarray:
        return _filled(lawkernels.pcm_log_arguments, (g.size,), np.float64, _rows(g), g_max)

    @staticmethod
    def pcm_negative_exponents(log_gh: np.ndarray, z: np.ndarray, scale: float) -> np.ndarray:
        return _filled(lawkernels.pcm_negative_exponents, (z.size,), np.float64, log_gh, _rows(z), scale)

    @staticmethod
    def power_law_negative_exponents(z: np.ndarray, nu_mean: float, nu_std: float) -> np.ndarray:
        return _filled(lawkernels.power_law_negative_exponents, (z.size,), np.float64, _rows(z), nu_mean, nu_std)

    @staticmethod
    def drifted(g_prog: np.ndarray, stuck: np.ndarray, factor: np.ndarray) -> np.ndarray:
        return _filled(lawkernels.drifted, g_prog.shape, np.float32, _rows(g_prog), _rows(stuck), factor)

    @staticmethod
    def pcm_read_g(g_prog: np.ndarray, g_max: float) -> np.ndarray:
        return _filled(lawkernels.pcm_read_g, (g_prog.size,), np.float64, _rows(g_prog), g_max)

    @staticmethod
    def add_read_variance(g, g_prog, kind, coef, q_coeff, q_max, time_factor, power, zero_power, variance) -> np.ndarray:
        """``lawkernels.add_read_variance``: adds to ``variance`` in place and returns it."""
        lawkernels.add_read_variance(_rows(g), _rows(g_prog), kind, coef, q_coeff, q_max, time_factor, power, zero_power, variance)
        return variance

    @staticmethod
    def read_epoch(g: np.ndarray, z: np.ndarray, variance: np.ndarray) -> np.ndarray:
        return _filled(lawkernels.read_epoch, g.shape, np.float32, _rows(g), _rows(z), variance)

    @staticmethod
    def half_widths(g_target: np.ndarray, window_us: float, window_rel: float, window_max: float) -> np.ndarray:
        """(2, ...) float64: the acceptance window's half-width at each target (uS), as ``verify.verify_pairs``
        computes it (libm's tanh for the soft cap ``window_max``, 0: none; window_rel a fraction)."""
        pairs = np.ascontiguousarray(g_target, np.float32).reshape(2, -1)
        out = np.empty(pairs.size, np.float64)
        verify.half_widths((pairs[0], pairs[1]), window_us, window_rel, window_max, out)
        return out.reshape(np.shape(g_target))

    @staticmethod
    def verify_pairs(targets: np.ndarray, starts: np.ndarray, kept: np.ndarray, settings: tuple, first: int) -> tuple[np.ndarray, ...]:
        """``verify.verify_pairs`` of a piece: (conductances float32, pulses int32, verify reads int32, converged int8),
        settings: its arguments from ``window_us`` to ``read_key`` and ``events`` (``cells.verified``)."""
        out = np.empty(targets.shape, np.float32)
        count = np.empty(targets.shape, np.int32)
        reads = np.empty(targets.shape, np.int32)
        done = np.empty(targets.shape, np.int8)
        *loop, events = settings
        verify.verify_pairs(_rows(targets), _rows(starts), _rows(kept), *loop, np.uint64(first), events, _rows(out), _rows(count), _rows(reads), _rows(done))
        return out, count, reads, done


_rows = lawkernels.rows


def _filled(kernel, shape: tuple[int, ...], dtype, *args) -> np.ndarray:
    """A new array of ``shape`` that ``kernel(*args, out)`` fills: flat (2m,) buffers whole, (2, m) pieces as their rows."""
    out = np.empty(shape, dtype)
    kernel(*args, out if len(shape) == 1 else _rows(out))
    return out


NUMPY_OPS = NumpyOps()
