"""Hardware-aware training: the chip's own physics in the torch forward pass (docs/physics.md, docs/robustness.md).

Each Linear / Conv layer, each projection of a MultiheadAttention and each gate matrix of an
LSTM / GRU / RNN computes what a freshly programmed TileArray of the chip config would (the
attention's score and context products stay digital, as on the chip; a recurrent layer's time steps
read the devices programmed for that forward): weights encoded per tile onto (G+, G-) with a write
error drawn anew at every forward, DAC per
row block, the exact per-output read + output noise (variance ``sum_i x_i^2 var_ij + out_noise^2``),
ADC per tile (with iterative bound management if configured), digital sum over row blocks;
weight_scale ``none`` puts the converters in raw weight units; per-epoch read noise is one draw
per forward. Quantizers pass gradients straight through; noise is added, never differentiated.
Drift and stuck-at faults are not trained against.
The standard deviations come from ``crossbar.laws.device``, so the physics is the kernels' own (evaluated in
NumPy on the CPU, then moved to the weights' device).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ChipConfig
from ..crossbar.read import converters
from ..crossbar.laws import device
from ..crossbar.laws.encode import weight_scales
from ..crossbar.grid import TileGrid
from .attention import attend, projection_weights, shape_of
from .convolution import output_size, pad_same
from .overrides import ForwardOverrides
from .recurrent import run_recurrent
from .recurrent import shape_of as recurrent_shape


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _quantize(v: torch.Tensor, bound: float | torch.Tensor, levels: int) -> torch.Tensor:
    """Clip to [-bound, bound]; with levels > 0 round onto the signed grid (straight through)."""
    v = torch.clamp(v, -bound, bound) if isinstance(bound, float) else torch.maximum(torch.minimum(v, bound), -bound)
    return v if levels == 0 else _ste_round(v * levels / bound) * bound / levels


def hwa_matmul(x: torch.Tensor, weight: torch.Tensor, cfg: ChipConfig, t_s: float = 0.0) -> torch.Tensor:
    """x (batch, in) @ weight.T (out x in) the way the chip computes it (one fresh chip per call:
    per-epoch read noise is drawn once per call, per-read noise per vector)."""
    return programmed(weight, cfg, t_s)(x)


def programmed(weight: torch.Tensor, cfg: ChipConfig, t_s: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """``weight`` (out x in) on a freshly programmed chip: its write error and per-epoch read noise drawn now,
    once; the returned product x (batch, in) -> (batch, out) draws per-read noise at every call (a recurrent
    layer's time steps, or several calls of one forward, read the same devices)."""
    dev, tile = cfg.device, cfg.tile
    n_out, n_in = weight.shape
    grid = TileGrid.for_matrix(n_in, n_out, tile.rows, tile.cols)
    w_t = weight.t()
    on = weight.device
    scales = torch.from_numpy(weight_scales(w_t.detach().cpu().numpy(), grid, cfg.mapping.weight_scale)).to(on)
    unscaled = cfg.mapping.weight_scale == "none"  # converters in raw weight units
    span = dev.g_max_us - dev.g_min_us
    blocks = []
    for p in range(grid.shape[0]):
        rows = slice(int(grid.row_edges[p]), int(grid.row_edges[p + 1]))
        w_norm = w_t[rows] / scales[p]
        target = torch.stack([dev.g_min_us + span * torch.relu(w_norm), dev.g_min_us + span * torch.relu(-w_norm)])
        write_std = torch.from_numpy(device.write_noise_std(target.detach().cpu().numpy(), dev.write_noise, dev.g_max_us).astype(np.float32)).to(on)
        g = torch.clamp(target + write_std * torch.randn_like(target), min=0.0)
        g_np = g.detach().cpu().numpy().astype(np.float32)
        epoch_std = torch.from_numpy(device.read_noise_std(g_np, dev, t_s, time="per_epoch")).to(on)
        g_read = torch.clamp(g + epoch_std * torch.randn_like(g), min=0.0) if bool((epoch_std > 0).any()) else g
        read_std = torch.from_numpy(device.read_noise_std(g_np, dev, t_s)).to(on)
        gain = scales[p] if unscaled else 1.0
        read_var = (read_std[0] ** 2 + read_std[1] ** 2) / span**2 * gain**2
        blocks.append((rows, (g_read[0] - g_read[1]) / span * gain, read_var, 1.0 if unscaled else scales[p]))

    def product(x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], n_out, dtype=x.dtype, device=x.device)
        for rows, w_analog, read_var, out_scale in blocks:
            out = out + _block_read(x[:, rows], w_analog, read_var, tile, grid) * out_scale
        return out

    return product


def _block_read(xb: torch.Tensor, w_analog: torch.Tensor, read_var: torch.Tensor, tile, grid: TileGrid) -> torch.Tensor:
    """One row block's digital result for inputs xb (batch, rows): DAC, noisy read, bound management, ADC,
    times the DAC scale (and the input-scale reduction of re-reads)."""

    def read(xn: torch.Tensor) -> torch.Tensor:
        """The tiles' noisy outputs before the ADC for DAC outputs xn."""
        y = xn @ w_analog
        with torch.no_grad():
            std = torch.sqrt((xn.detach() ** 2) @ read_var + tile.out_noise**2)
        return y + std * torch.randn_like(y)

    if tile.dac.range == "none":
        scale = torch.ones(xb.shape[0], 1, device=xb.device)
    elif tile.dac.range == "dynamic":
        peak = xb.detach().abs().amax(dim=1, keepdim=True)
        scale = torch.where(peak > 0, peak, torch.ones_like(peak))
    else:
        scale = torch.full((xb.shape[0], 1), float(tile.dac.bound), device=xb.device)

    def dac(rows_x: torch.Tensor, rows_scale: torch.Tensor) -> torch.Tensor:
        return rows_x / rows_scale if tile.dac.range == "none" else _quantize(rows_x / rows_scale, 1.0, tile.dac.levels)

    y = read(dac(xb, scale))
    reduction = torch.ones_like(y)
    if tile.bound_management == "iterative":
        y, reduction = _bound_managed(y, lambda idx, r: read(dac(xb[idx], scale[idx] * r)), float(tile.adc.bound),
                                      converters.bm_max_reduction(tile), grid)  # fmt: skip
    if tile.adc.range != "none":
        y = _quantize(y, float(tile.adc.bound), tile.adc.levels)
    return y * reduction * scale


def _bound_managed(y: torch.Tensor, reread, bound: float, limit: float, grid: TileGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """Iterative bound management on one row block's noisy outputs y (B, n_out), tile by tile:
    vectors with an output beyond ``bound`` are read again (``reread(indices, reduction)``) at
    half the input scale while they still exceed it and the reduction <= limit. Returns the
    outputs and the input-scale reduction of every output."""
    outputs, reductions = [], []
    for q in range(grid.shape[1]):
        cols = slice(int(grid.col_edges[q]), int(grid.col_edges[q + 1]))
        y_q = y[:, cols]
        r_q = torch.ones_like(y_q)
        active = torch.nonzero((y_q.detach().abs() > bound).any(dim=1)).flatten()
        r = 1.0
        while len(active) and r <= limit:
            r *= 2.0
            new = reread(active, r)[:, cols]
            y_q = y_q.index_put((active,), new)
            r_q = r_q.index_put((active,), torch.full_like(new, r))
            active = active[(new.detach().abs() > bound).any(dim=1)]
        outputs.append(y_q)
        reductions.append(r_q)
    return torch.cat(outputs, dim=1), torch.cat(reductions, dim=1)


def _affine(weight: torch.Tensor, bias: torch.Tensor | None, cfg: ChipConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """x (..., in) -> x W^T + b over the last dimension, W freshly programmed (``programmed``), b digital."""
    product = programmed(weight, cfg)

    def apply(x: torch.Tensor) -> torch.Tensor:
        y = product(x.reshape(-1, weight.shape[1]))
        y = y if bias is None else y + bias
        return y.reshape(*x.shape[:-1], weight.shape[0])

    return apply


def _linear_forward(cfg: ChipConfig):
    def forward(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return _affine(module.weight, module.bias, cfg)(x)

    return forward


def _attention_forward(cfg: ChipConfig):
    def forward(module: nn.MultiheadAttention, query, key, value, *args, **kwargs):
        projections = tuple(_affine(w, b, cfg) for w, b in projection_weights(module))
        bias_kv = None if module.bias_k is None else (module.bias_k, module.bias_v)
        return attend(shape_of(module), projections, bias_kv, module.training, query, key, value, *args, **kwargs)

    return forward


def _recurrent_forward(cfg: ChipConfig):
    def forward(module: nn.RNNBase, x, hx=None):
        products = []
        for layer in range(module.num_layers):
            for suffix in ("", "_reverse")[: 2 if module.bidirectional else 1]:
                pair = []
                for kind in ("ih", "hh"):
                    bias = getattr(module, f"bias_{kind}_l{layer}{suffix}") if module.bias else None
                    pair.append(_affine(getattr(module, f"weight_{kind}_l{layer}{suffix}"), bias, cfg))
                products.append(tuple(pair))
        return run_recurrent(recurrent_shape(module), x, hx, products)

    return forward


def _conv_forward(cfg: ChipConfig):
    def forward(module: nn.Conv1d | nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        one_d = isinstance(module, nn.Conv1d)
        x4 = x.unsqueeze(2) if one_d else x
        kernel, stride, dilation = (tuple(v) if not one_d else (1, v[0]) for v in (module.kernel_size, module.stride, module.dilation))
        padding = module.padding
        if padding == "same":
            x4 = pad_same(x4, kernel, dilation)
            padding = (0, 0)
        elif padding == "valid":
            padding = (0, 0)
        elif one_d:
            padding = (0, padding[0])
        batch = x4.shape[0]
        out_h, out_w = output_size(tuple(x4.shape[2:]), kernel, stride, padding, dilation)
        cols = F.unfold(x4, kernel, dilation, padding, stride)  # (B, C*k, L)
        groups, per_in = module.groups, cols.shape[1] // module.groups
        per_out = module.out_channels // groups
        weight = module.weight.reshape(module.out_channels, -1)
        parts = []
        for g in range(groups):
            patches = cols[:, g * per_in : (g + 1) * per_in].transpose(1, 2).reshape(-1, per_in)
            parts.append(hwa_matmul(patches, weight[g * per_out : (g + 1) * per_out], cfg).reshape(batch, -1, per_out))
        y = torch.cat(parts, dim=2).transpose(1, 2).reshape(batch, module.out_channels, out_h, out_w)
        if module.bias is not None:
            y = y + module.bias.reshape(1, -1, 1, 1)
        return y.squeeze(2) if one_d else y

    return forward


_KINDS = ((nn.MultiheadAttention, _attention_forward), (nn.RNNBase, _recurrent_forward), (nn.Linear, _linear_forward),
          ((nn.Conv1d, nn.Conv2d), _conv_forward))  # fmt: skip


class HardwareAware(ForwardOverrides):
    """Every Linear / Conv1d / Conv2d, MultiheadAttention and LSTM / GRU / RNN of ``model`` computes on a
    simulated chip of ``cfg`` (in training and evaluation) until ``remove()``; parameters and state_dict
    stay as they are."""

    def __init__(self, model: nn.Module, cfg: ChipConfig):
        modules = [m for m in model.modules() if isinstance(m, tuple(kind for kind, _ in _KINDS))]
        if not modules:
            raise ValueError(f"{type(model).__name__} has no Linear, Conv, attention or recurrent layer for hardware-aware training")
        for m in modules:
            if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.padding_mode != "zeros":
                raise ValueError(f"hardware-aware convolution supports zero padding only, not {m.padding_mode!r}")
            if isinstance(m, nn.RNNBase):
                recurrent_shape(m)  # refuses what the recurrent loop does not run (proj_size)
        super().__init__(modules, lambda m: next(make for kind, make in _KINDS if isinstance(m, kind))(cfg))
