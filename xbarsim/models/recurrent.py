"""The recurrent loop of nn.LSTM / nn.GRU / nn.RNN with pluggable matrix products and a hook on
every gate pre-activation: the analog layers run it on tiles, deep noise injection on torch."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Product = Callable[[torch.Tensor], torch.Tensor]  # (batch, in) -> (batch, out), bias included
GateHook = Callable[[torch.Tensor], torch.Tensor]  # a gate pre-activation -> what the gate sees


@dataclass(frozen=True)
class RecurrentShape:
    mode: str  # "LSTM", "GRU", "RNN_TANH", "RNN_RELU"
    hidden_size: int
    num_layers: int
    batch_first: bool
    bidirectional: bool


def _step(mode: str, gi, h, c, hidden: Product, hook: GateHook):
    """One time step: gi = this step's input products (+ bias), h/c the state."""
    gh = hidden(h)
    if mode == "LSTM":
        i, f, g, o = hook(gi + gh).chunk(4, dim=1)
        # c = f*c + i*g in two operations, not three (at batch 32 an operation's overhead is
        # about its arithmetic; measured 82 against 94 us a step)
        c = torch.addcmul(torch.sigmoid(f) * c, torch.sigmoid(i), torch.tanh(g))
        return torch.sigmoid(o) * torch.tanh(c), c
    if mode == "GRU":
        ir, iz, in_ = gi.chunk(3, dim=1)
        hr, hz, hn = gh.chunk(3, dim=1)
        r, z = torch.sigmoid(hook(ir + hr)), torch.sigmoid(hook(iz + hz))
        n = torch.tanh(hook(in_ + r * hn))
        return (1 - z) * n + z * h, None
    pre = hook(gi + gh)
    return (torch.tanh(pre) if mode == "RNN_TANH" else torch.relu(pre)), None


def run_recurrent(shape: RecurrentShape, x: torch.Tensor, hx, products: list[tuple[Product, Product]],
                  hook: GateHook = lambda pre: pre,
                  steps_section: Callable[[], AbstractContextManager] = nullcontext):  # fmt: skip
    """torch's recurrent semantics (inputs, hx, outputs, unbatched input) over ``products``, one
    (input, hidden) pair per layer and direction in that order. The input products of all steps
    go in one call; the time steps of each layer and direction run inside ``steps_section()``
    (e.g. ``mapping.serial.serial_section``). Returns (output, h_n) or (output, (h_n, c_n)) for an LSTM."""
    if isinstance(x, nn.utils.rnn.PackedSequence):
        raise ValueError("PackedSequence is not supported here: pass a padded tensor")
    unbatched = x.dim() == 2
    if unbatched:
        x = x.unsqueeze(1)
    elif shape.batch_first:
        x = x.transpose(0, 1)
    steps, batch = x.shape[:2]
    directions = 2 if shape.bidirectional else 1
    lstm = shape.mode == "LSTM"
    h0, c0 = (hx if lstm else (hx, None)) if hx is not None else (None, None)
    if h0 is not None and unbatched:
        h0, c0 = h0.unsqueeze(1), (c0.unsqueeze(1) if c0 is not None else None)
    zeros = torch.zeros(shape.num_layers * directions, batch, shape.hidden_size, dtype=x.dtype, device=x.device)
    h0 = zeros if h0 is None else h0
    c0 = zeros if (c0 is None and lstm) else c0
    h_n, c_n = [], []
    layer_input = x
    for layer in range(shape.num_layers):
        outputs = []
        for d in range(directions):
            index = layer * directions + d
            inputs, hidden = products[index]
            seq = layer_input if d == 0 else layer_input.flip(0)
            gi = inputs(seq.reshape(steps * batch, -1)).reshape(steps, batch, -1)
            h, c = h0[index], (c0[index] if lstm else None)
            out = []
            with steps_section():
                for t in range(steps):
                    h, c = _step(shape.mode, gi[t], h, c, hidden, hook)
                    out.append(h)
            out = torch.stack(out)
            outputs.append(out if d == 0 else out.flip(0))
            h_n.append(h)
            c_n.append(c)
        layer_input = torch.cat(outputs, dim=2) if directions == 2 else outputs[0]
    output = layer_input
    h_n = torch.stack(h_n)
    state = (h_n, torch.stack(c_n)) if lstm else h_n
    if unbatched:
        output = output.squeeze(1)
        state = (state[0].squeeze(1), state[1].squeeze(1)) if lstm else state.squeeze(1)
    elif shape.batch_first:
        output = output.transpose(0, 1)
    return output, state


def shape_of(module: nn.RNNBase) -> RecurrentShape:
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTM with proj_size > 0 is not supported")
    return RecurrentShape(module.mode, module.hidden_size, module.num_layers, module.batch_first, module.bidirectional)


def torch_products(module: nn.RNNBase) -> list[tuple[Product, Product]]:
    """The (input, hidden) products of a torch recurrent module, in run_recurrent's order."""
    products = []
    for layer in range(module.num_layers):
        for suffix in ("", "_reverse")[: 2 if module.bidirectional else 1]:
            pair = []
            for kind in ("ih", "hh"):
                weight = getattr(module, f"weight_{kind}_l{layer}{suffix}")
                bias = getattr(module, f"bias_{kind}_l{layer}{suffix}") if module.bias else None
                pair.append(lambda v, w=weight, b=bias: F.linear(v, w, b))
            products.append(tuple(pair))
    return products
