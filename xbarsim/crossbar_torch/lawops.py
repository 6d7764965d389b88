"""The device laws' operations (``crossbar.laws.lawops``) on torch tensors of one device: programming, faults, drift,
per-epoch read noise and the read-noise variances of a torch chip run where its conductances are.

Every operation is the CPU's, in the same precision and order: element-wise torch calls that are one IEEE
operation each (+ - * /, comparisons, selections; no fused multiply-add), the draws of noise stream version 1
(``rng.normal_pairs``, ``rng.uniform_pairs``), and NumPy's semantics for ``maximum``/``minimum``/``clip`` (the
first operand where they compare equal, NaN propagates). The functions libm or NumPy's SIMD code evaluate (log,
log10, exp, pow, sqrt) are NumPy's own on the CPU, called on the tensors' memory (no copy): torch's CPU
versions differ from NumPy's in the last bit for some values, and the Numba path's laws take NumPy's. On a GPU they
are torch's (CUDA's libdevice): within an ulp or two of NumPy's, so drift and the read-noise variances can differ
there in the last bits (docs/determinism.md). Programming needs none of them except the correctly rounded sqrt
(the verify window's tanh is taken on the host: ``half_widths``).

On the CPU the fused kernels, the draws and the pieces (``HOST_KERNELS``) are the Numba backend's own, run on the
tensors' memory (no copy): torch's CPU operations took 27x the time of the Numba kernels for a drift (a 2.4 M
weight matrix, 4.5 against 0.16 s, 2-core machine), and give the same bits. ``TorchOps(device, host_kernels=False)``
runs every operation in torch on the CPU too, as on a GPU (the tests check those bits against the Numba kernels).
"""

from __future__ import annotations

import numpy as np
import torch

from ..crossbar.laws import lawkernels, pieces
from ..crossbar.laws.lawops import NUMPY_OPS
from . import rng, verify

# the operations a CPU tensor takes from the Numba backend (``lawops.NumpyOps``), on its memory
# (and the allocations and arithmetic the pieces' threads would otherwise hand torch's own thread pool: 20% slower)
HOST_KERNELS = ("normals", "uniforms", "written", "pcm_log_arguments", "pcm_negative_exponents", "power_law_negative_exponents",
                "drifted", "pcm_read_g", "add_read_variance", "read_epoch", "verify_pairs", "wire_sums", "scaled_exp", "zeros", "full")  # fmt: skip

PIECE_PAIRS = 1 << 20  # device pairs evaluated at once: bounds the float64 temporaries (8 MB each)

_DTYPES = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32, np.dtype(np.int32): torch.int32,
           np.dtype(np.int8): torch.int8, np.dtype(np.bool_): torch.bool}  # fmt: skip


def torch_dtype(dtype) -> torch.dtype:
    """The torch dtype of a NumPy dtype (float64, float32, int32, int8, bool)."""
    return _DTYPES[np.dtype(dtype)]


class TorchOps:
    """``crossbar.laws.lawops.NumpyOps`` on tensors of ``device``: the same bits on the CPU; on a GPU the same bits
    wherever the law needs no transcendental function (module doc)."""

    name = "torch"

    def __init__(self, device: torch.device, host_kernels: bool = True):
        self.device = device
        self._host_math = device.type == "cpu"
        self.host_kernels = host_kernels and self._host_math
        if self.host_kernels:
            for name in HOST_KERNELS:
                setattr(self, name, _on_host(getattr(NUMPY_OPS, name)))

    def _math(self, host, own, *args):
        """host (a NumPy ufunc) on the CPU, on the tensors' memory; own (torch's) elsewhere."""
        if not self._host_math:
            return own(*args)
        result = host(*(a.numpy() if isinstance(a, torch.Tensor) else a for a in args))
        return torch.from_numpy(np.asarray(result))

    def log(self, a):
        return self._math(np.log, torch.log, a)

    def log10(self, a):
        return self._math(np.log10, torch.log10, a)

    def exp(self, a):
        return self._math(np.exp, torch.exp, a)

    def scaled_exp(self, a, scale: float):
        return self.exp(a * scale)

    def sqrt(self, a):
        return self._math(np.sqrt, torch.sqrt, a)

    def power(self, a, b):
        return self._math(np.power, torch.pow, a, b)

    @staticmethod
    def abs(a):
        return torch.abs(a)

    @staticmethod
    def where(condition, a, b):
        return torch.where(condition, a, b)

    @staticmethod
    def maximum(a, b):
        """np.maximum: a where a >= b or a is NaN, else b (b a tensor or a number)."""
        return torch.where((a >= b) | torch.isnan(a), a, b)

    @staticmethod
    def minimum(a, b):
        """np.minimum: a where a <= b or a is NaN, else b."""
        return torch.where((a <= b) | torch.isnan(a), a, b)

    def clip(self, a, lo, hi):
        return self.minimum(self.maximum(a, lo), hi)

    @staticmethod
    def stack(arrays):
        return torch.stack(list(arrays))

    @staticmethod
    def f64(a):
        return a.to(torch.float64)

    @staticmethod
    def f32(a):
        return a.to(torch.float32)

    def full(self, shape, value: float, dtype=np.float64):
        return torch.full(tuple(shape), value, dtype=torch_dtype(dtype), device=self.device)

    @staticmethod
    def full_like(a, value: float):
        return torch.full_like(a, value)

    def zeros(self, shape, dtype=np.float64):
        return torch.zeros(tuple(shape), dtype=torch_dtype(dtype), device=self.device)

    @staticmethod
    def copy(a):
        return a.clone()

    @staticmethod
    def any(a) -> bool:
        return bool(a.any())

    @staticmethod
    def to_numpy(a) -> np.ndarray:
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)

    def asarray(self, a):
        return a.to(self.device) if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def map_pairs(self, func, inputs, dtypes) -> list[torch.Tensor]:
        """``pieces.map_pairs`` on tensors: one piece per ``PIECE_PAIRS`` device pairs, in turn (torch's kernels
        use the device's threads themselves)."""
        shape = inputs[0].shape
        if self.host_kernels:  # the Numba backend's pieces, on several threads
            def piece(first: int, *views: np.ndarray) -> list[np.ndarray]:
                return [_host(out) for out in func(first, *(torch.from_numpy(v) for v in views))]

            return [torch.from_numpy(out) for out in pieces.map_pairs(piece, [_host(a) for a in inputs], dtypes)]
        flat = [a.reshape(2, -1) for a in inputs]
        n = flat[0].shape[1]
        if n <= PIECE_PAIRS:
            return [out.reshape(shape) for out in func(0, *flat)]
        outputs = [torch.empty((2, n), dtype=torch_dtype(d), device=self.device) for d in dtypes]
        for first in range(0, n, PIECE_PAIRS):
            last = min(first + PIECE_PAIRS, n)
            for out, piece in zip(outputs, func(first, *(a[:, first:last] for a in flat))):
                out[:, first:last] = piece
        return [out.reshape(shape) for out in outputs]

    def normals(self, key, n_pairs: int, first: int):
        return torch.stack(rng.normal_pairs(key, first, n_pairs, self.device))

    def uniforms(self, key, n_pairs: int, first: int):
        return torch.stack(rng.uniform_pairs(key, first, n_pairs, self.device))

    def written(self, g_target, kind: int, c0: float, c1: float, c2: float, scale: float, g_max: float, key, first: int):
        """``lawkernels.written``: max(G_target + float32(std z), 0), std of the write-noise law ``kind``."""
        z = self.normals(key, g_target.shape[1], first).to(torch.float64)
        g = g_target.to(torch.float64)
        if kind == lawkernels.WRITE_ABSOLUTE:
            deviation = c0 * z
        elif kind == lawkernels.WRITE_PROPORTIONAL:
            deviation = c0 * torch.abs(g) * z
        else:
            gh = g / g_max
            deviation = scale * self.maximum(c0 + c1 * gh + c2 * gh * gh, 0.0) * z
        return self.maximum(g_target + deviation.to(torch.float32), 0.0)

    def pcm_log_arguments(self, g, g_max: float):
        return self.maximum(g.to(torch.float64) / g_max, 1e-7).reshape(-1)

    def pcm_negative_exponents(self, log_gh, z, scale: float):
        z64 = z.reshape(-1).to(torch.float64)
        mean = self.clip(-0.0155 * log_gh + 0.0244, 0.049, 0.1)
        std = self.clip(-0.0125 * log_gh - 0.0059, 0.008, 0.045)
        return -(scale * torch.abs(mean + std * z64))

    def power_law_negative_exponents(self, z, nu_mean: float, nu_std: float):
        return -self.maximum(nu_mean + nu_std * z.reshape(-1).to(torch.float64), 0.0)

    @staticmethod
    def drifted(g_prog, stuck, factor):
        moved = (g_prog.to(torch.float64) * factor.reshape(g_prog.shape)).to(torch.float32)
        return torch.where(stuck != 0, g_prog, moved)

    @staticmethod
    def pcm_read_g(g_prog, g_max: float):
        g = torch.abs(g_prog.to(torch.float64)) / g_max
        return torch.where(g != 0, g, 1.0).reshape(-1)

    def add_read_variance(self, g, g_prog, kind, coef, q_coeff, q_max, time_factor, power, zero_power, variance):
        """``lawkernels.add_read_variance``: adds one term's square to ``variance`` (2m,) in place and returns it."""
        if kind == lawkernels.READ_ADDITIVE:
            return variance.add_(coef * coef)
        term = coef * torch.abs(g.reshape(-1).to(torch.float64))
        if kind == lawkernels.READ_PCM:
            p = torch.where(g_prog.reshape(-1) != 0, power, zero_power)
            term = term * (self.minimum(q_coeff / self.maximum(p, 1e-3), q_max) * time_factor)
        return variance.add_(term * term)

    def read_epoch(self, g, z, variance):
        std = self.sqrt(variance).to(torch.float32).reshape(g.shape)
        return self.maximum(g + std * z, 0.0)

    @staticmethod
    def wire_sums(g):
        """``irdrop.wire_sums`` of one array (rows, cols): its prefix sums as torch's cumulative sums, which add in
        order on the CPU (the same bits; a GPU's scans add in another order: float64 rounding apart)."""
        g64 = g.to(torch.float64)
        n, m = g64.shape
        j = torch.arange(1, m + 1, dtype=torch.float64, device=g.device)
        to_end = torch.arange(n, 0, -1, dtype=torch.float64, device=g.device)[:, None]
        c0 = torch.cumsum(g64, dim=1)
        along_rows = torch.cumsum(g64 * j, dim=1) + j * (c0[:, -1:] - c0)
        d1 = torch.cumsum(g64 * to_end, dim=0)
        return along_rows + ((to_end * torch.cumsum(g64, dim=0) + d1[-1:]) - d1)

    def half_widths(self, g_target, window_us: float, window_rel: float, window_max: float):
        """``NumpyOps.half_widths``, computed on the host whatever the device (its tanh is libm's: the same bits
        everywhere), as a tensor of the device."""
        return self.asarray(NUMPY_OPS.half_widths(self.to_numpy(g_target), window_us, window_rel, window_max))

    def verify_pairs(self, targets, starts, kept, settings: tuple, first: int):
        """Program-and-verify of a piece (``NumpyOps.verify_pairs``), every device at once (``verify``)."""
        return verify.verify_pairs(self, targets, starts, kept, settings, first)


def _host(a):
    """A CPU tensor's NumPy view (no copy); anything else as it is."""
    return a.numpy() if isinstance(a, torch.Tensor) else a


def _on_host(kernel):
    """``kernel`` (a ``NumpyOps`` operation) on CPU tensors: their NumPy views in, tensors on the same memory out."""

    def call(*args):
        result = kernel(*(_host(a) for a in args))
        if isinstance(result, tuple):
            return tuple(torch.from_numpy(r) for r in result)
        return torch.from_numpy(result) if isinstance(result, np.ndarray) else result

    return call
