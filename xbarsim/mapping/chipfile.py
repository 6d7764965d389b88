"""Chip files: a mapped network and its programmed tiles in one HDF5 file.

Layout (format version 1)::

    /                 attrs: format="xbarsim-chip", format_version, xbarsim_version, seed
    /config           attr json: the ChipConfig
    /model            attrs: class_path, kwargs_json ("null" if unknown), folded_json
    /digital/<key>    the network's remaining (digital) state_dict, one dataset per tensor
    /blocks/<key>     a denoising block: attrs layer, spec_json; its tensors
    /layers/<name>    attrs: kind, spec_json, order; one group per weight matrix:
        /m<k>         g_target, g_prog, stuck, scales, dac_bounds, adc_bounds, [bias];
                      attrs: seed, t_s, reads, epoch (read epoch), bias_in_rows

Writes go to a temporary file in the same folder, then replace the target, so a failed save
leaves the previous file untouched. Every read error names the file and what is wrong.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any
import h5py
import numpy as np
import torch
from torch import nn

from .. import __version__
from ..config import ChipConfig
from ..errors import XbarsimError
from ..crossbar.tile import TileArray
from .blocks import DenoisingBlock
from .chip import AnalogModel, ModelSource, VirtualChip
from .fold import replace_folded, set_submodule
from .layers import LAYER_KINDS
from ..models.checkpoint import import_class
from .matrix import AnalogMatrix
from ..progress import progress_bar

FORMAT = "xbarsim-chip"
FORMAT_VERSION = 1
_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "fletcher32": True}  # checksums catch corruption


class ChipFileError(XbarsimError):
    """A chip file that cannot be read: names the file and the problem."""


def save_chip(model: AnalogModel, path: str | Path, progress: bool | None = None) -> None:
    """Write ``model`` to ``path`` atomically; ``progress`` as in ``AnalogModel.save``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp_name, "w") as f:
            _write(f, model, progress)
        with open(tmp_name, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write(f: h5py.File, model: AnalogModel, progress: bool | None) -> None:
    chip = model.chip
    f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "xbarsim_version": __version__, "seed": chip.seed})
    f.create_group("config").attrs["json"] = chip.cfg.to_json()
    src = f.create_group("model")
    src.attrs.update({"class_path": model.source.class_path, "kwargs_json": json.dumps(model.source.kwargs),
                      "folded_json": json.dumps(model.source.folded)})  # fmt: skip
    digital = f.create_group("digital")
    for key, tensor in model.network.state_dict().items():
        digital.create_dataset(key, data=tensor.detach().cpu().numpy())
    blocks = f.create_group("blocks")
    for key, block in model.blocks.items():
        group = blocks.create_group(key)
        group.attrs.update({"layer": model.block_layers[key], "spec_json": json.dumps(block.spec())})
        for name, tensor in block.state_dict().items():
            group.create_dataset(name, data=tensor.detach().cpu().numpy())
    layers = f.create_group("layers")
    for order, (name, layer) in enumerate(progress_bar(chip.layers.items(), "save chip", "layer", progress, len(chip.layers))):
        group = layers.create_group(name)
        group.attrs.update({"kind": layer.kind, "spec_json": json.dumps(layer.spec()), "order": order})
        for k, matrix in enumerate(layer.matrices()):
            m = group.create_group(f"m{k}")
            state = matrix.tiles.state()
            for key in TileArray.STATE_ARRAYS:
                m.create_dataset(key, data=state[key], **_COMPRESSION)
            m.attrs.update({"seed": state["seed"], "t_s": state["t_s"], "reads": state["reads"], "epoch": state["epoch"], "bias_in_rows": matrix.bias_in_rows})
            if matrix.bias is not None:
                m.create_dataset("bias", data=matrix.bias.numpy())


def load_chip(path: str | Path, model: nn.Module | type | None = None, progress: bool | None = None,
              **model_kwargs: Any) -> AnalogModel:  # fmt: skip
    """Rebuild the AnalogModel saved in ``path``.

    The network's structure comes from ``model`` (an instance, or a class built with
    ``model_kwargs``) or, when omitted, from the class path and arguments stored in the file.
    ``progress``: a bar per layer (True), none (False), or only after a few seconds (None).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"chip file {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ChipFileError(f"{path}: not a readable HDF5 file ({exc})") from exc
    try:
        with f:
            return _read(f, path, model, model_kwargs, progress)
    except ChipFileError:
        raise
    except (KeyError, OSError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise ChipFileError(f"{path}: damaged or incomplete chip file ({type(exc).__name__}: {exc})") from exc


def _read(f: h5py.File, path: Path, model, model_kwargs, progress: bool | None) -> AnalogModel:
    if f.attrs.get("format") != FORMAT:
        raise ChipFileError(f"{path}: not an xbarsim chip file (no format={FORMAT!r} attribute)")
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise ChipFileError(f"{path}: chip file format version {version}; this xbarsim ({__version__}) reads version {FORMAT_VERSION}")
    cfg = ChipConfig.model_validate_json(f["config"].attrs["json"])
    source = ModelSource(
        f["model"].attrs["class_path"], json.loads(f["model"].attrs["kwargs_json"]), json.loads(f["model"].attrs["folded_json"])
    )
    network = _structure(path, source, model, model_kwargs).eval()
    replace_folded(network, source.folded)
    layers = {}
    for name in progress_bar(sorted(f["layers"], key=lambda n: f["layers"][n].attrs["order"]), "load chip", "layer", progress):
        group = f["layers"][name]
        kind = group.attrs["kind"]
        if kind not in LAYER_KINDS:
            raise ChipFileError(f"{path}: layer {name!r} has unknown kind {kind!r}")
        matrices = [_matrix(group[f"m{k}"], cfg, name) for k in range(len(group))]
        layers[name] = LAYER_KINDS[kind].from_spec(json.loads(group.attrs["spec_json"]), matrices)
        try:
            network.get_submodule(name)
        except AttributeError as exc:
            raise ChipFileError(f"{path}: the network has no layer {name!r} to put on the chip (wrong model class?)") from exc
        network = set_submodule(network, name, layers[name])
    digital = {key: torch.from_numpy(np.asarray(f["digital"][key])) for key in _dataset_keys(f["digital"])}
    try:
        network.load_state_dict(digital, strict=True)
    except RuntimeError as exc:
        raise ChipFileError(f"{path}: the stored digital weights do not fit the network ({exc})") from exc
    model = AnalogModel(network, VirtualChip(cfg, int(f.attrs["seed"]), layers), source)
    for group in f.get("blocks", {}).values():
        block = DenoisingBlock(**json.loads(group.attrs["spec_json"]))
        block.load_state_dict({key: torch.from_numpy(np.asarray(group[key])) for key in group})
        model.attach_block(group.attrs["layer"], block)
    return model


def _dataset_keys(group: h5py.Group) -> list[str]:
    keys: list[str] = []
    group.visititems(lambda name, obj: keys.append(name) if isinstance(obj, h5py.Dataset) else None)
    return keys


def _matrix(group: h5py.Group, cfg: ChipConfig, name: str) -> AnalogMatrix:
    state = {key: np.asarray(group[key]) for key in TileArray.STATE_ARRAYS}
    state.update({key: group.attrs[key] for key in ("seed", "t_s", "reads")})
    state["epoch"] = group.attrs.get("epoch", 0)  # read epoch; files written before it existed are at epoch 0
    bias = torch.from_numpy(np.asarray(group["bias"])) if "bias" in group else None
    return AnalogMatrix(TileArray.from_state(cfg, state), bias, bool(group.attrs["bias_in_rows"]), name)


def _structure(path: Path, source: ModelSource, model, model_kwargs) -> nn.Module:
    if isinstance(model, nn.Module):
        return copy.deepcopy(model)
    if isinstance(model, type):
        return model(**model_kwargs)
    if source.kwargs is None and not model_kwargs:
        raise ChipFileError(
            f"{path}: the file does not record how to build {source.class_path}; pass the model (or its class and arguments) to load_chip"
        )
    try:
        cls = import_class(source.class_path)
    except ValueError as exc:
        raise ChipFileError(f"{path}: {exc}; pass the model to load_chip") from exc
    return cls(**{**(source.kwargs or {}), **model_kwargs})
