"""Analog layers: drop-in ``nn.Module``s whose matrix products run on crossbar tiles.

Each layer holds ``AnalogMatrix`` objects and knows how to describe itself for a chip file:
``spec()`` (JSON-able hyperparameters) and ``from_spec(spec, matrices)``. ``from_torch`` maps a
trained torch layer, taking one seed per matrix from ``seeds``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ChipConfig
from ..crossbar.backend import NUMBA, TileBackend
from ..models.convolution import output_size, pad_same
from ..models.recurrent import Product, RecurrentShape, run_recurrent, shape_of
from .linear import is_linear, linear_weight
from .matrix import AnalogMatrix
from .serial import steps_section

PATCH_VALUES = 1 << 22  # patch values per tile call (16 MB of DAC buffer): bounds memory, stays in cache
GPU_PATCH_VALUES = 1 << 26  # on a GPU (torch backend): 256 MB of rows per call, few and large kernels


class AnalogLayer(nn.Module):
    """Base of the analog layers: a list of matrices and a description for the chip file."""

    kind: str = ""

    def __init__(self, matrices: list[AnalogMatrix]):
        super().__init__()
        self._matrices = matrices

    def matrices(self) -> list[AnalogMatrix]:
        return self._matrices

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.spec().items())


class AnalogLinear(AnalogLayer):
    """``nn.Linear`` on tiles (and any layer that maps as one: ``mapping.linear``)."""

    kind = "linear"

    def __init__(self, matrix: AnalogMatrix):
        super().__init__([matrix])
        self.in_features, self.out_features = matrix.in_features, matrix.out_features

    @classmethod
    def from_torch(cls, module: nn.Module, cfg: ChipConfig, seeds: Iterator[int], name: str, backend: TileBackend = NUMBA) -> AnalogLinear:
        return cls(AnalogMatrix.from_weight(*linear_weight(module, name), cfg, next(seeds), name, backend))

    @classmethod
    def from_spec(cls, spec: dict[str, Any], matrices: list[AnalogMatrix]) -> AnalogLinear:
        return cls(matrices[0])

    def spec(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"layer {self._matrices[0].name!r} takes {self.in_features} input features, got shape {tuple(x.shape)}")
        y = self._matrices[0](x.reshape(-1, self.in_features))
        return y.reshape(*x.shape[:-1], self.out_features)


class AnalogConv(AnalogLayer):
    """``nn.Conv1d`` / ``nn.Conv2d`` on tiles through im2col; one matrix per group.

    Zero padding only (int, tuple, 'valid' or 'same'); stride, dilation and groups as torch has
    them. The matrices' columns are in (kernel row, kernel column, channel) order, so that the
    patches are gathered from a channels-last copy of the input. Backward passes straight
    through the effective weights (the gradient of an ideal convolution with them).
    """

    kind = "conv"

    def __init__(self, matrices: list[AnalogMatrix], dims: int, in_channels: int, out_channels: int,
                 kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...] | str,
                 dilation: tuple[int, ...], groups: int):  # fmt: skip
        super().__init__(matrices)
        self.dims, self.in_channels, self.out_channels, self.groups = dims, in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = tuple(kernel_size), tuple(stride), tuple(dilation)
        self.padding = padding if isinstance(padding, str) else tuple(padding)

    @classmethod
    def from_torch(cls, module: nn.Conv1d | nn.Conv2d, cfg: ChipConfig, seeds: Iterator[int], name: str,
                   backend: TileBackend = NUMBA) -> AnalogConv:  # fmt: skip
        if module.padding_mode != "zeros":
            raise ValueError(f"layer {name!r}: padding_mode {module.padding_mode!r} is not supported (only 'zeros')")
        groups, out = module.groups, module.out_channels
        per_group = out // groups
        weight = module.weight if module.weight.dim() == 4 else module.weight.unsqueeze(2)
        weight = weight.permute(0, 2, 3, 1).reshape(out, -1)  # columns in (i, j, channel) order
        matrices = [
            AnalogMatrix.from_weight(
                weight[g * per_group : (g + 1) * per_group],
                None if module.bias is None else module.bias[g * per_group : (g + 1) * per_group],
                cfg, next(seeds), name if groups == 1 else f"{name}[group {g}]", backend,
            )
            for g in range(groups)
        ]  # fmt: skip
        dims = 1 if isinstance(module, nn.Conv1d) else 2
        return _CONV[dims](matrices, dims, module.in_channels, out, module.kernel_size, module.stride, module.padding,
                           module.dilation, groups)  # fmt: skip

    @classmethod
    def from_spec(cls, spec: dict[str, Any], matrices: list[AnalogMatrix]) -> AnalogConv:
        return _CONV[spec["dims"]](matrices, **spec)

    def spec(self) -> dict[str, Any]:
        return {"dims": self.dims, "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
                "dilation": list(self.dilation), "groups": self.groups}  # fmt: skip

    def _as_2d(self, values: tuple[int, ...], fill: int) -> tuple[int, int]:
        return (fill, values[0]) if self.dims == 1 else (values[0], values[1])

    def geometry(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(kernel, stride, dilation) as 2-D (rows, cols)."""
        return self._as_2d(self.kernel_size, 1), self._as_2d(self.stride, 1), self._as_2d(self.dilation, 1)

    def effective_weight(self) -> torch.Tensor:
        """(out, in/groups, kh, kw) float32: the convolution the devices compute now."""
        (kh, kw), _, _ = self.geometry()
        parts = [m.effective_weight().reshape(m.out_features, kh, kw, -1) for m in self._matrices]
        return torch.cat(parts).permute(0, 3, 1, 2).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (self.dims + 1, self.dims + 2) or x.shape[-self.dims - 1] != self.in_channels:
            raise ValueError(f"layer {self._matrices[0].name!r} takes {self.in_channels} input channels in a "
                             f"{self.dims}-d input, got shape {tuple(x.shape)}")  # fmt: skip
        unbatched = x.dim() == self.dims + 1
        if unbatched:
            x = x.unsqueeze(0)
        if self.dims == 1:
            x = x.unsqueeze(2)
        kernel, _, dilation = self.geometry()
        if self.padding == "same":
            x = pad_same(x, kernel, dilation)
            padding = (0, 0)
        else:
            padding = (0, 0) if self.padding == "valid" else self._as_2d(self.padding, 0)
        out = _ConvOnTiles.apply(x, self, padding)
        if self.dims == 1:
            out = out.squeeze(2)
        return out.squeeze(0) if unbatched else out

    def conv_on_tiles(self, x: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
        """x (B, C, H, W) -> (B, out, OH, OW) with symmetric zero ``padding``, on the tiles."""
        kernel, stride, dilation = self.geometry()
        batch = x.shape[0]
        out_size = output_size(tuple(x.shape[2:]), kernel, stride, padding, dilation)
        # channels-last in and out: a network running in channels_last memory format (as it
        # does after the first analog conv) needs no layout copies between layers
        first = self._matrices[0]
        first.check_device(x)
        x_nhwc = x.detach().to(torch.float32).permute(0, 2, 3, 1).contiguous()
        x_nhwc = x_nhwc if first.on_torch else x_nhwc.numpy()
        per_group_in = self.in_channels // self.groups
        per_group_out = self.out_channels // self.groups
        budget = GPU_PATCH_VALUES if first.device.type == "cuda" else PATCH_VALUES
        samples = max(1, budget // (out_size[0] * out_size[1] * kernel[0] * kernel[1] * per_group_in))
        geometry = (kernel, stride, padding, dilation, out_size)
        if batch <= samples and self.groups == 1:  # the usual case: one call, its product as it is
            out = first.product_patches(x_nhwc, geometry, 0)
            return _tensor(out).reshape(batch, *out_size, self.out_channels).permute(0, 3, 1, 2)
        # runs of images and groups, each copied into its place (on the CPU a NumPy copy: half torch.cat's time)
        shape = (batch, *out_size, self.out_channels)
        out = torch.empty(shape, device=x.device) if first.on_torch else np.empty(shape, np.float32)
        for b0 in range(0, batch, samples):
            n = min(samples, batch - b0)
            for g, matrix in enumerate(self._matrices):
                y = matrix.product_patches(x_nhwc[b0 : b0 + n], geometry, g * per_group_in)
                out[b0 : b0 + n, :, :, g * per_group_out : (g + 1) * per_group_out] = y.reshape(n, *out_size, per_group_out)
        return _tensor(out).permute(0, 3, 1, 2)


def _tensor(y) -> torch.Tensor:
    """A product of the tiles as a tensor: the torch backend's as it is, the Numba kernels' NumPy array without a copy."""
    return y if isinstance(y, torch.Tensor) else torch.from_numpy(y)


class _ConvOnTiles(torch.autograd.Function):
    """Forward on the tiles; backward: the input gradient of an ideal convolution with the
    effective weights (straight through the noise)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: AnalogConv, padding: tuple[int, int]) -> torch.Tensor:
        ctx.layer, ctx.padding, ctx.input_shape = layer, padding, x.shape
        return layer.conv_on_tiles(x, padding)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        layer = ctx.layer
        _, stride, dilation = layer.geometry()
        grad_x = torch.nn.grad.conv2d_input(
            ctx.input_shape, layer.effective_weight(), grad, stride, ctx.padding, dilation, layer.groups
        )
        return grad_x, None, None


class AnalogRecurrent(AnalogLayer):
    """``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` on tiles: multi-layer, bidirectional, batch_first,
    with or without biases, as torch has them. Every gate product at every time step is a tile MVM:
    the input products of all steps in one call, the hidden products step by step, with torch held at one
    thread and BLAS's threads as ``serial.steps_section`` sets them (the steps' products are small).
    Matrices are ordered layer, direction, (input, hidden)."""

    kind = "recurrent"

    def __init__(self, matrices: list[AnalogMatrix], mode: str, input_size: int, hidden_size: int, num_layers: int,
                 batch_first: bool, bidirectional: bool):  # fmt: skip
        super().__init__(matrices)
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.batch_first, self.bidirectional = batch_first, bidirectional

    @classmethod
    def from_torch(cls, module: nn.RNNBase, cfg: ChipConfig, seeds: Iterator[int], name: str,
                   backend: TileBackend = NUMBA) -> AnalogRecurrent:  # fmt: skip
        try:
            shape_of(module)
        except ValueError as exc:
            raise ValueError(f"layer {name!r}: {exc}") from exc
        matrices = []
        for layer in range(module.num_layers):
            for suffix in ("", "_reverse")[: 2 if module.bidirectional else 1]:
                for kind in ("ih", "hh"):
                    weight = getattr(module, f"weight_{kind}_l{layer}{suffix}")
                    bias = getattr(module, f"bias_{kind}_l{layer}{suffix}") if module.bias else None
                    matrices.append(AnalogMatrix.from_weight(weight, bias, cfg, next(seeds), f"{name}.{kind}_l{layer}{suffix}", backend))
        return _RECURRENT[module.mode](matrices, module.mode, module.input_size, module.hidden_size, module.num_layers,
                                       module.batch_first, module.bidirectional)  # fmt: skip

    @classmethod
    def from_spec(cls, spec: dict[str, Any], matrices: list[AnalogMatrix]) -> AnalogRecurrent:
        return _RECURRENT[spec["mode"]](matrices, **spec)

    def spec(self) -> dict[str, Any]:
        return {"mode": self.mode, "input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "batch_first": self.batch_first, "bidirectional": self.bidirectional}  # fmt: skip

    def forward(self, x: torch.Tensor, hx=None):
        shape = RecurrentShape(self.mode, self.hidden_size, self.num_layers, self.batch_first, self.bidirectional)
        pairs = [self._step_products(ih, hh) for ih, hh in zip(self._matrices[0::2], self._matrices[1::2])]
        return run_recurrent(shape, x, hx, pairs, steps_section=steps_section)

    def _step_products(self, ih: AnalogMatrix, hh: AnalogMatrix) -> tuple[Product, Product]:
        """(input product, hidden product) of one layer and direction. An LSTM or RNN sums its
        two products before any gate sees them, so a digital hidden bias joins the input
        products of all steps in one addition, not one a step (a GRU's n gate needs it apart)."""
        if self.mode == "GRU" or ih.bias is None or hh.bias is None:
            return ih, hh
        both = ih.bias + hh.bias
        return functools.partial(ih.plus, bias=both), functools.partial(hh.plus, bias=None)


class AnalogConv1d(AnalogConv):
    """``nn.Conv1d`` on tiles."""


class AnalogConv2d(AnalogConv):
    """``nn.Conv2d`` on tiles."""


class AnalogLSTM(AnalogRecurrent):
    """``nn.LSTM`` on tiles."""


class AnalogGRU(AnalogRecurrent):
    """``nn.GRU`` on tiles."""


class AnalogRNN(AnalogRecurrent):
    """``nn.RNN`` (tanh or relu) on tiles."""


_CONV = {1: AnalogConv1d, 2: AnalogConv2d}
_RECURRENT = {"LSTM": AnalogLSTM, "GRU": AnalogGRU, "RNN_TANH": AnalogRNN, "RNN_RELU": AnalogRNN}

LAYER_KINDS: dict[str, type[AnalogLayer]] = {cls.kind: cls for cls in (AnalogLinear, AnalogConv, AnalogRecurrent)}

# torch layer type -> analog layer type (besides the layers that map as a Linear: ``linear.is_linear``)
MAPPABLE: dict[type[nn.Module], type[AnalogLayer]] = {
    nn.Conv1d: AnalogConv,
    nn.Conv2d: AnalogConv,
    nn.LSTM: AnalogRecurrent,
    nn.GRU: AnalogRecurrent,
    nn.RNN: AnalogRecurrent,
}

# layers with weights that would compute a product we cannot map (so no silent digital leftovers)
UNMAPPABLE: tuple[type[nn.Module], ...] = (
    nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Bilinear,
    nn.RNNCell, nn.LSTMCell, nn.GRUCell, nn.modules.lazy.LazyModuleMixin,
)  # fmt: skip


def analog_type_for(module: nn.Module) -> type[AnalogLayer] | None:
    """The analog layer for this torch layer: AnalogLinear for any layer that maps as a Linear, else the entry of
    ``MAPPABLE`` for its type (subclasses with their own forward are not mapped)."""
    if is_linear(module):
        return AnalogLinear
    for torch_type, analog in MAPPABLE.items():
        if isinstance(module, torch_type) and type(module).forward is torch_type.forward:
            return analog
    return None
