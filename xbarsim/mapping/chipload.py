"""load_chip: an AnalogModel from a chip file, with nothing in the file imported or called.

The network comes from the file's description (a zoo model or a tree of allow-listed torch.nn
layers, ``netspec``) or from the user (``model=``). The description is first built on torch's
"meta" device (shapes only, no memory), and every layer, matrix and digital tensor in the file is
checked against it; only then is the network given memory, so a forged description cannot make
the loader allocate more than the file holds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import heap
from ..crossbar.backend import NUMBA, TileBackend
from ..crossbar.tile import TileArray
from ..crossbar_torch.backend import select
from ..errors import XbarsimError
from ..progress import progress_bar
from ..models import netspec
from ..models.attention import split_attention
from .blocks import DenoisingBlock
from .chip import AnalogModel, ModelSource, VirtualChip
from .chipcheck import ChipFileError, dumps, one_line
from .chipfile import ChipRecord, LayerRecord, read_chip
from .fold import replace_folded, set_submodule
from .layers import LAYER_KINDS, analog_type_for
from .linear import is_linear, linear_features
from .matrix import AnalogMatrix
from .transformer import attention_modules, prepare_encoders, split_parents

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
_FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def load_chip(path: str | Path, model: nn.Module | type | None = None, progress: bool | None = None, device=None,
              backend: str | None = None, **model_kwargs: Any) -> AnalogModel:  # fmt: skip
    """Rebuild the AnalogModel saved in ``path``.

    The network's structure comes from the file when it describes it as data (a zoo model, or
    standard torch.nn layers); otherwise pass ``model``: an instance, or a class built with
    ``model_kwargs``. Raises ChipFileError (one line naming the file, layer and dataset) for a file
    that is damaged, forged or does not fit the model. ``progress``: a bar per layer (True), none
    (False), or only after a few seconds (None). The chip runs on ``device`` (default the CPU) with
    ``backend`` (auto, numba, torch; default the config's ``runtime.backend``, which files do not store):
    it is rebuilt on the CPU, checked, then moved there.
    """
    path = Path(path)
    record = read_chip(path)
    target = select(backend, device, record.cfg)

    def fail(where: str, problem: str) -> ChipFileError:
        return ChipFileError(one_line(f"{path}: {where}: {problem}"))

    if model is None:
        if model_kwargs:
            raise XbarsimError(f"model arguments {sorted(model_kwargs)} were given without a model to build")
        if record.network is None:
            raise fail("model", f"the file does not describe its network as data (it was mapped from {record.origin[:80]!r}, "
                                f"neither a zoo model nor standard torch.nn layers); pass the model: "
                                f"load_chip(path, model=...) or --model/--model-args")  # fmt: skip
        try:
            network = netspec.build(record.network, device="meta")
        except XbarsimError as exc:
            raise fail("model", str(exc)) from None
        source = ModelSource(record.network, record.origin, record.folded)
    else:
        network = copy.deepcopy(model) if isinstance(model, nn.Module) else model(**model_kwargs)
        source = ModelSource.of(network, record.folded)
    _fold(network, record, fail)
    network = split_attention(network, split_parents([layer.name for layer in record.layers], network))
    _check_fit(network, record, fail)
    return _assemble(network.eval(), record, source, progress, fail, model is None, target).to(target.device, backend=target.name)


def _fold(network: nn.Module, record: ChipRecord, fail) -> None:
    """The folded structure: folded BatchNorms become Identity, their layers get a bias."""
    modules = dict(network.named_modules())
    for layer, bn in record.folded:
        if not (isinstance(modules.get(layer), _FOLDABLE) and isinstance(modules.get(bn), nn.modules.batchnorm._BatchNorm)):
            raise fail("model", f"folded_json pair {[layer[:60], bn[:60]]}: the network has no conv or linear layer "
                                f"followed by a BatchNorm there (wrong model?)")  # fmt: skip
    replace_folded(network, record.folded)


def _check_fit(network: nn.Module, record: ChipRecord, fail) -> None:
    """Every analog layer, matrix, digital tensor and block of the file fits ``network``."""
    modules = dict(network.named_modules())
    for layer in record.layers:
        where = f"layer {layer.name!r}"
        module = modules.get(layer.name)
        if module is None:
            raise fail(where, "the network has no module of that name (wrong model?)")
        analog = analog_type_for(module)
        if layer.kind not in LAYER_KINDS or analog is None or analog.kind != layer.kind:
            raise fail(where, f"the file holds a {layer.kind[:20]!r} layer, the network a {type(module).__name__} there")
        expected = module_spec(module)
        differs = [k for k in {**expected, **layer.spec} if dumps(layer.spec.get(k)) != dumps(expected.get(k))]
        if differs:
            shown = ", ".join(f"{k} {dumps(layer.spec.get(k))[:40]} (network: {dumps(expected.get(k))})" for k in differs[:3])
            raise fail(where, f"spec_json does not match the network's {type(module).__name__}: {shown}")
        _check_matrices(layer, module, record.cfg.mapping.bias == "rows", fail)
    mapped = tuple(f"{layer.name}." for layer in record.layers)
    state = {k: v for k, v in network.state_dict().items() if not k.startswith(mapped)}
    missing, unexpected = sorted(set(state) - set(record.digital)), sorted(set(record.digital) - set(state))
    if missing or unexpected:
        raise fail("dataset digital", f"the digital tensors do not fit the network (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for key, tensor in state.items():
        value = record.digital[key]
        if value.shape != tuple(tensor.shape) or (value.dtype.kind == "f") != tensor.is_floating_point():
            raise fail(f"dataset digital/{key}", f"has {value.dtype} values of shape {value.shape}; the network's tensor is "
                                                  f"{str(tensor.dtype).removeprefix('torch.')} of shape {tuple(tensor.shape)}")  # fmt: skip
    layers = {layer.name: layer for layer in record.layers}
    for block in record.blocks:
        channels, channel_dim = output_channels(layers[block.layer].spec)
        if (block.spec["channels"], block.spec["channel_dim"]) != (channels, channel_dim):
            raise fail(f"block after layer {block.layer!r}", f"spec_json has {block.spec['channels']} channels on dim "
                                                            f"{block.spec['channel_dim']}; the layer gives {channels} on dim {channel_dim}")  # fmt: skip


def _check_matrices(layer: LayerRecord, module: nn.Module, bias_rows: bool, fail) -> None:
    expected = matrix_shapes(module)
    where = f"layer {layer.name!r}"
    if len(layer.matrices) != len(expected):
        raise fail(where, f"holds {len(layer.matrices)} matrices, the network's {type(module).__name__} has {len(expected)}")
    for k, (matrix, (n_out, n_in, has_bias)) in enumerate(zip(layer.matrices, expected)):
        in_rows = has_bias and bias_rows
        shape = matrix.state["targets"].shape
        if shape != (n_in + in_rows, n_out) or matrix.bias_in_rows != in_rows:
            raise fail(f"{where}, dataset m{k}/targets", f"holds {shape[0]} inputs x {shape[1]} outputs (bias in rows: "
                                                          f"{matrix.bias_in_rows}); the network's layer needs {n_in + in_rows} x {n_out} "
                                                          f"(bias in rows: {in_rows})")  # fmt: skip
        if (matrix.bias is not None) != (has_bias and not in_rows):
            raise fail(f"{where}, dataset m{k}/bias", f"{'present' if matrix.bias is not None else 'missing'}, but the network's "
                                                      f"layer {'has' if has_bias else 'has no'} digital bias")  # fmt: skip


def module_spec(module: nn.Module) -> dict[str, Any]:
    """The ``spec()`` the analog layer mapped from this torch layer has."""
    if is_linear(module):
        n_in, n_out, _ = linear_features(module)
        return {"in_features": n_in, "out_features": n_out}
    if isinstance(module, nn.RNNBase):
        return {"mode": module.mode, "input_size": module.input_size, "hidden_size": module.hidden_size,
                "num_layers": module.num_layers, "batch_first": module.batch_first, "bidirectional": module.bidirectional}  # fmt: skip
    padding = module.padding if isinstance(module.padding, str) else list(module.padding)
    if module.padding_mode != "zeros":
        padding = f"padding_mode {module.padding_mode}"  # never matches: analog convolutions pad with zeros only
    return {"dims": 1 if isinstance(module, nn.Conv1d) else 2, "in_channels": module.in_channels,
            "out_channels": module.out_channels, "kernel_size": list(module.kernel_size), "stride": list(module.stride),
            "padding": padding, "dilation": list(module.dilation), "groups": module.groups}  # fmt: skip


def matrix_shapes(module: nn.Module) -> list[tuple[int, int, bool]]:
    """(outputs, inputs, has a bias) of each weight matrix the torch layer maps to, in mapping order."""
    if is_linear(module):
        n_in, n_out, has_bias = linear_features(module)
        return [(n_out, n_in, has_bias)]
    if isinstance(module, nn.RNNBase):
        gates, hidden, directions = _GATES[module.mode] * module.hidden_size, module.hidden_size, 2 if module.bidirectional else 1
        shapes = []
        for k in range(module.num_layers):
            inputs = module.input_size if k == 0 else hidden * directions
            shapes += [(gates, inputs, module.bias), (gates, hidden, module.bias)] * directions
        return shapes
    per_group = module.out_channels // module.groups
    inputs = int(np.prod(module.kernel_size)) * (module.in_channels // module.groups)
    return [(per_group, inputs, module.bias is not None)] * module.groups


def output_channels(spec: dict[str, Any]) -> tuple[int, int]:
    """(channels, channel dim) of an analog layer's output, from its spec: what a denoising block after it sees."""
    if "out_channels" in spec:
        return spec["out_channels"], 1
    if "out_features" in spec:
        return spec["out_features"], -1
    return spec["hidden_size"] * (2 if spec["bidirectional"] else 1), -1


def _assemble(network: nn.Module, record: ChipRecord, source: ModelSource, progress: bool | None, fail, materialize: bool,
              backend: TileBackend = NUMBA) -> AnalogModel:  # fmt: skip
    """The AnalogModel of ``record`` on ``network``, its tiles regenerated on ``backend``; ``materialize``: the network
    is on the meta device, and the file's tensors become its tensors (every one is in the file: the load is strict)."""
    dtypes = {key: tensor.dtype for key, tensor in network.state_dict().items()}
    layers = {}
    for layer in progress_bar(record.layers, "load chip", "layer", progress, len(record.layers)):
        matrices = []
        for k, m in enumerate(layer.matrices):
            try:
                tiles = TileArray.from_state(record.cfg, m.state, backend)  # regenerated where it runs
            except ValueError as exc:
                raise fail(f"layer {layer.name!r}, group m{k}", str(exc)) from None
            matrices.append(AnalogMatrix(tiles, None if m.bias is None else torch.from_numpy(m.bias.astype(np.float32)), m.bias_in_rows, layer.name))
            heap.release()
        layers[layer.name] = LAYER_KINDS[layer.kind].from_spec(layer.spec, matrices)
        network = set_submodule(network, layer.name, layers[layer.name])
    # assign=True rather than Module.to_empty(): to_empty's empty_like on meta tensors imports sympy (2-3 s)
    digital = {key: torch.from_numpy(value).to(dtypes[key]) for key, value in record.digital.items()}
    network.load_state_dict(digital, strict=True, assign=materialize)
    prepare_encoders(network)
    model = AnalogModel(network, VirtualChip(record.cfg, record.seed, layers, attention_modules(network)), source)
    for block in record.blocks:
        module = DenoisingBlock(**block.spec)
        module.load_state_dict({key: torch.from_numpy(value.astype(np.float32)) for key, value in block.tensors.items()})
        model.attach_block(block.layer, module)
    return model
