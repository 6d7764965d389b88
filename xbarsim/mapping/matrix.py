"""AnalogMatrix: one torch weight matrix (and its bias) on a TileArray, callable on tensors."""

from __future__ import annotations

import numpy as np
import torch

from ..config import ChipConfig
from ..crossbar.backend import NUMBA, TileBackend
from ..crossbar.tile import TileArray


class AnalogMatrix:
    """``y = x @ W.T + b`` computed by the tiles. The bias is added digitally after the ADC, or
    (``mapping.bias: rows``) stored in an extra row of devices driven by a constant input 1.

    The tiles' backend decides where it computes: the Numba kernels take NumPy arrays on the CPU, the
    torch backend takes tensors on its device (``device``); the digital bias lives there too.
    Backward passes straight through the effective weights the tiles hold now, so trainable
    modules before an analog layer can learn on the noisy chip.
    """

    def __init__(self, tiles: TileArray, bias: torch.Tensor | None, bias_in_rows: bool, name: str = ""):
        self.tiles = tiles
        self.bias = bias  # digital bias (None when absent or stored in rows), on ``device``
        self.bias_in_rows = bias_in_rows
        self.name = name

    @classmethod
    def from_weight(cls, weight: torch.Tensor, bias: torch.Tensor | None, cfg: ChipConfig, seed: int, name: str = "",
                    backend: TileBackend = NUMBA) -> AnalogMatrix:  # fmt: skip
        """Map ``weight`` (out x in) and ``bias`` (out,) onto tiles programmed on ``backend`` (the bias stays on the CPU
        until the matrix moves, ``to``); refuses NaN/Inf with the layer name."""
        w = weight.detach().to("cpu", torch.float32)
        b = None if bias is None else bias.detach().to("cpu", torch.float32).clone()  # never the network's own tensor
        for label, tensor in (("weights", w), ("bias", b)):
            if tensor is not None and not np.isfinite(tensor.numpy()).all():  # NumPy: torch's threads fight BLAS on a busy machine
                raise ValueError(f"layer {name!r}: {label} contain NaN or Inf")
        in_rows = b is not None and cfg.mapping.bias == "rows"
        matrix = torch.cat([w, b[:, None]], dim=1) if in_rows else w
        tiles = TileArray.from_weights(matrix.numpy(), cfg, seed, backend)
        return cls(tiles, None if in_rows else b, in_rows, name)

    @property
    def in_features(self) -> int:
        return self.tiles.shape[1] - int(self.bias_in_rows)

    @property
    def out_features(self) -> int:
        return self.tiles.shape[0]

    @property
    def device(self) -> torch.device:
        """Where the tiles compute and take their inputs."""
        return torch.device(self.tiles.backend.device)

    @property
    def on_torch(self) -> bool:
        """Whether the tiles take tensors (the torch backend) rather than NumPy arrays."""
        return self.tiles.backend.name == "torch"

    def to(self, backend: TileBackend) -> AnalogMatrix:
        """Move the tiles and the digital bias onto ``backend`` (``TileArray.to``), in place."""
        self.tiles.to(backend)
        if self.bias is not None:
            self.bias = self.bias.to(self.device)
        return self

    def effective_weight(self) -> torch.Tensor:
        """(out, in) float32 on ``device``: the weights the devices hold now (without a bias row)."""
        weights = self.tiles.device_weights()
        return (weights if self.on_torch else torch.from_numpy(weights))[:, : self.in_features]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, in) float -> (batch, out) float32, on ``device``."""
        return self.plus(x, self.bias)

    def plus(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """x (batch, in) -> the tiles' product (a bias stored in rows included) plus ``bias``
        (out,) instead of the digital bias (None: none), float32."""
        self.check_device(x)
        if x.requires_grad and torch.is_grad_enabled():
            y = _TileProduct.apply(x, self)
            return y if bias is None else y + bias
        y = self._mvm(x)  # inference: no autograd node (its bookkeeping costs more than a small product)
        return y if bias is None else y.add_(bias)

    def check_device(self, x: torch.Tensor) -> None:
        """ValueError naming the layer unless x is on the tiles' device."""
        if x.device != self.device:
            raise ValueError(f"layer {self.name!r}: its tiles are on {self.device}, got a tensor on {x.device} (move the chip: chip.to(device))")

    def product(self, x: np.ndarray, with_bias: bool = False):
        """x (batch, in) float32 (NumPy, or a tensor on the torch backend's device) -> (batch, out) of the
        same kind: the tiles' product (plus a bias stored in rows), and the digital bias too if ``with_bias``."""
        if self.bias_in_rows:
            x = torch.cat([x, x.new_ones(x.shape[0], 1)], 1) if self.on_torch else np.concatenate([x, np.ones((x.shape[0], 1), np.float32)], axis=1)
        return self._finish(lambda: self.tiles.mvm(x), with_bias)

    def product_patches(self, x_nhwc, geometry: tuple, first_channel: int):
        """A convolution on the tiles (``TileArray.mvm_patches``), digital bias included:
        x_nhwc (B, H, W, C) -> (B * out_h * out_w, out), NumPy or (torch backend) a tensor."""
        return self._finish(lambda: self.tiles.mvm_patches(x_nhwc, *geometry, first_channel, int(self.bias_in_rows)), True)

    def _finish(self, compute, with_bias: bool):
        try:
            y = compute()
        except ValueError as exc:
            raise ValueError(f"layer {self.name!r}: {exc}") from exc
        if with_bias and self.bias is not None:
            y += self.bias if self.on_torch else self.bias.numpy()
        return y

    def _mvm(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, in) -> (batch, out) float32, a new tensor (the tiles' output, no copy)."""
        x = x.detach().to(torch.float32)
        if self.on_torch:
            return self.product(x.contiguous())
        return torch.from_numpy(self.product(np.ascontiguousarray(x.numpy())))


class _TileProduct(torch.autograd.Function):
    """Forward on the tiles; backward straight through the tiles' effective weights."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, matrix: AnalogMatrix) -> torch.Tensor:
        ctx.matrix = matrix
        return matrix._mvm(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad @ ctx.matrix.effective_weight(), None
