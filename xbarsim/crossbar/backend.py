"""Where a TileArray's arrays live and what computes on them: the interface of a tile backend, and the
NumPy + Numba backend of the CPU.

A backend holds the arrays a TileArray's reads take (the conductances in converter units, the read
variances, the converters' columns, the stream keys) and reads with them, and evaluates the device laws
(``laws/``: programming, program-and-verify, faults, drift, per-epoch read noise, the read-noise variances) with
its ``ops`` (``laws.lawops``): one selection of the law and its coefficients, element-wise kernels per backend,
the same bits (docs/determinism.md). ``TileArray`` keeps everything else (the targets, read counters, epochs, drift
compensation, converter ranges, its file state) the same too. The second backend, ``xbarsim.crossbar_torch``, runs
the same tile in torch operations on any torch device, the laws included, so a chip's conductances never leave
its device; it lives outside ``crossbar/``, which never imports torch.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..config import ChipConfig
from .grid import TileGrid
from .laws.encode import expand_rows, normalized_difference
from .laws.lawops import NUMPY_OPS
from .read import blas, patches, readout
from .read.inputs import InputRows


class TileBackend(Protocol):
    """What a TileArray asks of the backend its arrays live on (arrays: ``np.ndarray`` or ``torch.Tensor``)."""

    name: str  # "numba" or "torch"
    device: str  # where the arrays are: "cpu", "cuda:0", ...
    ops: Any  # the device laws' operations on its arrays (``laws.lawops``)
    keeps_programmed: bool  # whether a TileArray always keeps its programmed devices (else while they fit ``keep``'s budget)

    def check(self, cfg: ChipConfig) -> None:
        """Refuse (``XbarsimError``, naming the field) a config this backend cannot compute."""

    def asarray(self, a: np.ndarray) -> Any:
        """An exact copy of host array ``a`` on the backend (the array itself where it already is one)."""

    def to_numpy(self, a: Any) -> np.ndarray:
        """An array of the backend as a NumPy array (no copy where it already is one)."""

    def contiguous(self, a: Any) -> Any: ...

    def with_tail(self, matrix: Any, tail: int) -> Any:
        """``matrix`` (n_in, n_out) followed by the ``tail`` zero rows its products read past the last row block
        (``blas.BlockLayout``), where the backend's products do; else ``matrix`` itself."""

    def normalized_rows(self, g: Any, g_min: float, g_max: float, gain: Any | None, tail: int) -> Any:
        """``with_tail(normalized_difference(g) * gain)`` (no gain: 1) of cell conductances g (2, n_in, n_out)."""

    def expand_rows(self, per_block: Any, grid: TileGrid) -> Any:
        """(P, ...) -> (n_in, ...): each row block's values repeated over its rows."""

    def stream_keys(self, keys: dict[int, np.ndarray]) -> Any:
        """The read streams' keys ({purpose: (P,) uint64}) as ``read`` takes them."""

    def ideal_product(self, x: Any, weights: np.ndarray) -> Any:
        """x (B, n_in) @ weights.T (weights (n_out, n_in) float32, NumPy): an ideal tile's exact product."""

    def input_matrix(self, x: Any) -> Any:
        """Input vectors as a (B, n) float32 C-contiguous array of the backend."""

    def rows(self, x: Any) -> Any:
        """Input rows x (from ``input_matrix``) as ``read`` takes them."""

    def im2col(self, x_nhwc: Any, kernel, stride, padding, dilation, out_size, first_channel: int, channels: int, ones: int) -> Any:
        """A convolution's input vectors (``TileArray.mvm_patches``) as rows, ``ones`` inputs of 1 appended."""

    def read(self, tiles: Any, n_batch: int, inputs: Any, keys: Any, first_vector: int, record: bool) -> tuple[Any, int]:
        """``read.readout.read``: (outputs (n_batch, n_out) float32, tile re-reads)."""


class NumbaBackend:
    """The CPU backend: NumPy arrays, reads through the Numba kernels (``read/``). Convolutions gather
    their patches inside the DAC."""

    name = "numba"
    device = "cpu"
    fused_patches = True  # mvm_patches gathers patches into the DAC's buffer (read/patches.py)
    ops = NUMPY_OPS
    keeps_programmed = False  # 18-36 bytes per weight: kept while they fit ``keep``'s budget, else regenerated when needed

    def check(self, cfg: ChipConfig) -> None:
        pass  # every config the package accepts

    def asarray(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    def contiguous(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a)

    def with_tail(self, matrix: np.ndarray, tail: int) -> np.ndarray:
        return blas.with_tail(matrix, tail)

    def normalized_rows(self, g: np.ndarray, g_min: float, g_max: float, gain: np.ndarray | None, tail: int) -> np.ndarray:
        rows = blas.tail_buffer(g.shape[1], g.shape[2], tail)
        body = normalized_difference(g, g_min, g_max, out=rows[: g.shape[1]])  # no temporary, no copy
        if gain is not None:
            body *= gain
        return rows

    def expand_rows(self, per_block: np.ndarray, grid: TileGrid) -> np.ndarray:
        return expand_rows(per_block, grid)

    def stream_keys(self, keys: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        return keys

    def ideal_product(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return blas.matmul(x, weights.T)

    def input_matrix(self, x) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    def rows(self, x: np.ndarray) -> InputRows:
        return InputRows(x)

    def im2col(self, x_nhwc, kernel, stride, padding, dilation, out_size, first_channel: int, channels: int, ones: int) -> np.ndarray:
        rows = patches.im2col(x_nhwc, kernel, stride, padding, dilation, out_size, first_channel, channels)
        return np.concatenate([rows, np.ones((len(rows), ones), np.float32)], axis=1)

    def read(self, tiles, n_batch: int, inputs, keys, first_vector: int, record: bool) -> tuple[np.ndarray, int]:
        return readout.read(tiles, n_batch, inputs, keys, first_vector, record)


NUMBA = NumbaBackend()
