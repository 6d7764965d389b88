"""The torch tile backend (``crossbar.backend.TileBackend``) on one torch device, and the choice of a backend.

``select(backend, device, cfg)`` is how mapping, loading and moving a chip pick where it runs: the
Numba kernels on the CPU by default (``auto``), torch operations on any other device, or torch on the
CPU too when asked for (``backend="torch"``, or ``runtime.backend: torch`` in the chip config).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..config import ChipConfig
from ..crossbar.backend import NUMBA, TileBackend
from ..crossbar.grid import TileGrid
from ..crossbar.laws.encode import normalized_difference
from ..errors import XbarsimError
from . import patches, readout, support
from .lawops import TorchOps

BACKENDS = ("auto", "numba", "torch")


class TorchBackend:
    """What a tile's reads take as torch tensors on ``torch_device``, and its reads in torch operations there
    (``crossbar_torch``); the device laws that make the conductances run there too (``lawops``), and a TileArray
    keeps its programmed devices there. One instance per device (``torch_backend``)."""

    name = "torch"
    fused_patches = False  # convolutions hand the tiles their patches as rows (``patches.im2col``)
    keeps_programmed = True  # drift and read epochs start from them, on the device

    def __init__(self, device: torch.device):
        self.torch_device = device
        self.device = str(device)
        self.ops = TorchOps(device)

    def __repr__(self) -> str:
        return f"TorchBackend({self.device!r})"

    def check(self, cfg: ChipConfig) -> None:
        support.check(cfg)

    def asarray(self, a) -> torch.Tensor:
        return self.ops.asarray(a)

    def to_numpy(self, a) -> np.ndarray:
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)

    def contiguous(self, a: torch.Tensor) -> torch.Tensor:
        return a.contiguous()

    def with_tail(self, matrix: torch.Tensor, tail: int) -> torch.Tensor:
        return matrix  # the batched GEMM pads its blocks itself (``blocks``)

    def normalized_rows(self, g: torch.Tensor, g_min: float, g_max: float, gain: torch.Tensor | None, tail: int) -> torch.Tensor:
        gdiff = normalized_difference(g, g_min, g_max)
        return gdiff if gain is None else gdiff * gain

    def expand_rows(self, per_block: torch.Tensor, grid: TileGrid) -> torch.Tensor:
        return per_block[self._block_of_row(grid.row_edges.tobytes())]

    @functools.lru_cache(maxsize=256)
    def _block_of_row(self, row_edges: bytes) -> torch.Tensor:
        edges = np.frombuffer(row_edges, np.int64)
        return self.asarray(np.repeat(np.arange(len(edges) - 1), np.diff(edges)))

    def stream_keys(self, keys: dict[int, np.ndarray]) -> dict[int, torch.Tensor]:
        return {purpose: self.asarray(k.view(np.int64)) for purpose, k in keys.items()}

    def ideal_product(self, x: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
        return x @ self.asarray(weights).T

    def input_matrix(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            return self.asarray(np.asarray(x, np.float32))
        if x.device != self.torch_device:
            raise ValueError(f"the tiles are on {self.device}, the input on {x.device}")
        return x.detach().to(torch.float32).contiguous()

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def im2col(self, x_nhwc, kernel, stride, padding, dilation, out_size, first_channel: int, channels: int, ones: int) -> torch.Tensor:
        return patches.im2col(self.input_image(x_nhwc), kernel, stride, padding, dilation, out_size, first_channel, channels, ones)

    def input_image(self, x) -> torch.Tensor:
        """An image (any array of 4 dimensions) as a float32 tensor on the device."""
        return self.input_matrix(x) if isinstance(x, torch.Tensor) else self.asarray(np.asarray(x, np.float32))

    def read(self, tiles, n_batch: int, inputs: torch.Tensor, keys, first_vector: int, record: bool) -> tuple[torch.Tensor, int]:
        return readout.read(tiles, n_batch, inputs, keys, first_vector, record)


def torch_device(device) -> torch.device:
    """``device`` (a name such as "cuda", "cuda:1", "cpu", or a torch.device) checked and made explicit
    ("cuda" -> "cuda:<current>"); XbarsimError names a device this machine does not have."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise XbarsimError(f"device {device!r}: not a torch device ({exc})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise XbarsimError(f"device {str(device)!r}: this torch ({torch.__version__}) has no CUDA device here")
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise XbarsimError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as exc:
        raise XbarsimError(f"device {str(device)!r} is not available here ({exc})") from None
    return dev


@functools.lru_cache(maxsize=None)
def torch_backend(device: torch.device) -> TorchBackend:
    """The torch backend of ``device`` (one per device, so that arrays on it compare as on one backend)."""
    return TorchBackend(device)


def select(backend: str | None, device, cfg: ChipConfig) -> TileBackend:
    """The backend a chip of ``cfg`` runs on: ``backend`` (auto, numba, torch; None: the config's
    ``runtime.backend``) on ``device`` (None: the CPU). ``auto`` is Numba on the CPU, torch elsewhere."""
    name = cfg.runtime.backend if backend is None else backend
    if name not in BACKENDS:
        raise XbarsimError(f"backend {name!r}: choose from {', '.join(BACKENDS)}")
    dev = torch_device("cpu" if device is None else device)
    if name == "auto":
        name = "numba" if dev.type == "cpu" else "torch"
    if name == "numba":
        if dev.type != "cpu":
            raise XbarsimError(f"backend 'numba' runs on the CPU only, not on {dev}; use backend 'torch' (or 'auto') there")
        return NUMBA
    return torch_backend(dev)
