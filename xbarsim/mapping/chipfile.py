"""Chip files: a mapped network and its programmed tiles in one HDF5 file, read and written as plain data.

This module only moves data between a file and a ``ChipRecord``: ``AnalogModel.record()`` (chip.py)
makes the record of a chip, ``load_chip`` (chipload.py) a chip of a record. A file is data, never code: the network is a description (``netspec``), and every
value read is checked before use (``chipcheck``); a problem raises ``ChipFileError``, one line
naming the file, the layer and the dataset.

Layout (format version 2)::

    /                 attrs: format="xbarsim-chip", format_version, xbarsim_version, seed
    /config           attr json: the ChipConfig
    /model            attrs: network_json (a netspec description, or null), origin, folded_json
    /digital/<key>    the network's remaining (digital) state_dict, one dataset per tensor
    /blocks/b<k>      a denoising block: attrs layer, spec_json; its tensors
    /layers/<name>    attrs: kind, spec_json, order; one group per weight matrix:
        /m<k>         targets, scales, dac_bounds, adc_bounds, [bias], [drift_reference], [drift_gain];
                      attrs: seed, t_s, reads, epoch (read epoch), drift_law, bias_in_rows, programmed_crc32

``targets`` (inputs, outputs) float32 holds the target conductances of each device pair in one
number: G+ (>= 0) where G- is g_min, else -G- (mapping puts g_min on one side of every pair). The
programmed state (write error, stuck devices) is not stored: it is a deterministic function of the
targets, the device config and the matrix seed (``device.program``), regenerated when the chip is
rebuilt (``TileArray.from_state``) and checked against ``programmed_crc32`` (CRC-32 of G_prog then
the stuck codes), so a reload is bit-identical and the file is a quarter of the raw state (ResNet-18:
45 MB), about the size of the float32 weights. With drift compensation,
``drift_reference`` and ``drift_gain`` hold the probe's reference level and the gain in use, so a load
reads no probe (files without them, from earlier xbarsim versions, read it again). Arrays are stored
uncompressed (noisy float32 barely compresses, and gzip costs seconds), with Fletcher-32 checksums, each
in one chunk up to 1 GiB (earlier files have h5py's automatic chunks: chunking does not change what is read).

``origin`` ("module:Class" of the mapped network) only words the error when the network has no
description; it is never imported. Writes are atomic (``atomic_write``): a failed save leaves the
previous file untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from ..atomic import atomic_write
from ..config import ChipConfig
from ..crossbar.laws import device
from ..limits import MAX_DRIFT_S
from ..paths import regular_file
from ..progress import progress_bar
from .chipcheck import ChipFileError, FileReader, check_block, check_compensation, check_matrix, check_targets, dumps, one_line

FORMAT = "xbarsim-chip"
FORMAT_VERSION = 2
TILE_ARRAYS = ("scales", "dac_bounds", "adc_bounds")  # stored as TileArray.state() has them
COMPENSATION = {"reference": "drift_reference", "gain": "drift_gain"}  # TileArray.state() key -> dataset
ROOT_GROUPS = ("config", "model", "digital", "layers", "blocks")
_MAX_CHUNK_BYTES = 1 << 30  # HDF5 refuses chunks of 4 GiB or more

__all__ = ["ChipFileError", "ChipRecord", "LayerRecord", "MatrixRecord", "BlockRecord", "read_chip", "write_chip"]


@dataclass
class MatrixRecord:
    """One weight matrix: ``state`` as ``TileArray.state()`` gives it, and its digital bias (out,)."""

    state: dict[str, Any]
    bias: np.ndarray | None
    bias_in_rows: bool


@dataclass
class LayerRecord:
    name: str
    kind: str
    spec: dict[str, Any]
    matrices: list[MatrixRecord]


@dataclass
class BlockRecord:
    """A denoising block after analog layer ``layer``: its spec and its tensors (NumPy)."""

    layer: str
    spec: dict[str, Any]
    tensors: dict[str, np.ndarray]


@dataclass
class ChipRecord:
    """Everything a chip file holds, as data."""

    cfg: ChipConfig
    seed: int
    network: dict[str, Any] | None  # a netspec description; None: the user must pass the model
    origin: str
    folded: list[list[str]]
    digital: dict[str, np.ndarray]
    layers: list[LayerRecord]
    blocks: list[BlockRecord]


# ---------------------------------------------------------------- writing
def write_chip(path: str | Path, record: ChipRecord, progress: bool | None = None) -> None:
    """Write ``record`` to ``path`` atomically, with ordinary file permissions. ``progress``: a bar per
    layer (True), none (False), or only after a few seconds (None)."""
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        _write(f, record, progress)


def _write(f: h5py.File, record: ChipRecord, progress: bool | None) -> None:
    f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "xbarsim_version": __version__, "seed": record.seed})
    f.create_group("config").attrs["json"] = record.cfg.to_json()
    f.create_group("model").attrs.update({"network_json": dumps(record.network), "origin": record.origin,
                                          "folded_json": dumps(record.folded)})  # fmt: skip
    digital = f.create_group("digital")
    for key, value in record.digital.items():
        digital.create_dataset(key, data=value)
    blocks = f.create_group("blocks")
    for k, block in enumerate(record.blocks):
        group = blocks.create_group(f"b{k}")
        group.attrs.update({"layer": block.layer, "spec_json": dumps(block.spec)})
        for name, value in block.tensors.items():
            group.create_dataset(name, data=value)
    layers = f.create_group("layers")
    for order, layer in enumerate(progress_bar(record.layers, "save chip", "layer", progress, len(record.layers))):
        group = layers.create_group(layer.name)
        group.attrs.update({"kind": layer.kind, "spec_json": dumps(layer.spec), "order": order})
        for k, matrix in enumerate(layer.matrices):
            m = group.create_group(f"m{k}")
            state = matrix.state
            _checked_dataset(m, "targets", state["targets"])
            for key in TILE_ARRAYS:
                _checked_dataset(m, key, state[key])
            m.attrs.update({key: state[key] for key in ("seed", "t_s", "reads", "epoch", "programmed_crc32", "drift_law")})
            m.attrs["bias_in_rows"] = matrix.bias_in_rows
            for key, name in COMPENSATION.items():
                if state.get(key) is not None:
                    _checked_dataset(m, name, np.atleast_1d(state[key]).astype(np.float32))
            if matrix.bias is not None:
                m.create_dataset("bias", data=matrix.bias)


def _checked_dataset(group: h5py.Group, name: str, value: np.ndarray) -> None:
    """A dataset with a Fletcher-32 checksum (corruption is caught on reading), in one chunk when it is below
    1 GiB: the filter then runs once per dataset (h5py's automatic chunks of ~1 MB cost 30% more time)."""
    value = np.asarray(value)
    chunks = value.shape if 0 < value.nbytes <= _MAX_CHUNK_BYTES else True
    group.create_dataset(name, data=value, chunks=chunks, fletcher32=True)


# ---------------------------------------------------------------- reading
def read_chip(path: str | Path) -> ChipRecord:
    """The record in chip file ``path``, every value checked; ChipFileError names what is wrong."""
    path = regular_file(path, "chip file")
    reader = FileReader(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise reader.error("", f"not a readable HDF5 file ({exc})") from None
    try:
        with f:
            return _read(f, reader)
    except ChipFileError:
        raise
    except (KeyError, OSError, ValueError, RuntimeError, TypeError) as exc:  # h5py's errors for damaged files
        raise reader.error("", f"damaged or incomplete chip file ({type(exc).__name__}: {exc})") from None


def _read(f: h5py.File, reader: FileReader) -> ChipRecord:
    if not (isinstance(f.attrs.get("format"), str) and f.attrs["format"] == FORMAT):
        raise reader.error("", f"not an xbarsim chip file (no format={FORMAT!r} attribute)")
    version = reader.int_attr(f, "format_version", "")
    if version != FORMAT_VERSION:
        raise reader.error("", f"chip file format version {version}; this xbarsim ({__version__}) reads version "
                               f"{FORMAT_VERSION} only (map the network again with `xbarsim map`)")  # fmt: skip
    unexpected = sorted(set(f) - set(ROOT_GROUPS))
    if unexpected:
        raise reader.error("", f"unexpected members {[one_line(n)[:60] for n in unexpected[:4]]} at the root (format version "
                               f"{FORMAT_VERSION} holds the groups {', '.join(ROOT_GROUPS)})")  # fmt: skip
    for name in ("config", "model"):
        if len(reader.group(f, name, "")) > 0:
            raise reader.error(name, f"unexpected members {[one_line(n)[:60] for n in sorted(f[name])[:4]]} (it holds attributes only)")
    seed = reader.int_attr(f, "seed", "")
    cfg = reader.config(reader.group(f, "config", ""))
    model = reader.group(f, "model", "")
    network = reader.json_attr(model, "network_json", "model", (dict, type(None)))
    origin = reader.text_attr(model, "origin", "model")
    folded = reader.json_attr(model, "folded_json", "model", list)
    if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(n, str) for n in p) for p in folded):
        raise reader.error("model", "folded_json must be a list of [layer, batchnorm] name pairs")
    digital = {key: reader.array(ds, f"dataset digital/{key}", "fiub") for key, ds in reader.datasets(reader.group(f, "digital", ""))}
    layers = _layers(reader.group(f, "layers", ""), cfg, reader)
    names = {layer.name for layer in layers}
    blocks = [_block(key, reader.group(f["blocks"], key, "blocks"), names, reader) for key in reader.group(f, "blocks", "")]
    return ChipRecord(cfg, seed, network, origin, folded, digital, layers, blocks)


def _layers(group: h5py.Group, cfg: ChipConfig, reader: FileReader) -> list[LayerRecord]:
    found = []
    for name in group:
        where = f"layer {name!r}"
        layer = reader.group(group, name, where)
        order = reader.int_attr(layer, "order", where)
        spec = reader.json_attr(layer, "spec_json", where, dict)
        count = len(layer)
        if count == 0 or sorted(layer) != sorted(f"m{k}" for k in range(count)):
            raise reader.error(where, f"expected matrix groups m0..m{max(count - 1, 0)}, found {sorted(layer)[:8]}")
        matrices = [_matrix(reader.group(layer, f"m{k}", where), cfg, reader, where, f"m{k}") for k in range(count)]
        found.append((order, LayerRecord(name, reader.text_attr(layer, "kind", where), spec, matrices)))
    if sorted(order for order, _ in found) != list(range(len(found))):
        raise reader.error("layers", "the layers' order attributes must number them 0, 1, 2, ... without repeats")
    return [layer for _, layer in sorted(found, key=lambda item: item[0])]


def _matrix(group: h5py.Group, cfg: ChipConfig, reader: FileReader, layer: str, label: str) -> MatrixRecord:
    """Matrix group ``label`` (m<k>) of ``layer`` ("layer 'name'"): its state as ``TileArray.from_state`` takes it."""
    where = f"{layer}, group {label}"

    def fail(key: str, problem: str) -> ChipFileError:
        return reader.error(f"{layer}, dataset {label}/{key}", problem)

    def dataset(key: str) -> np.ndarray:
        return reader.array(reader.dataset(group, key, where), f"{layer}, dataset {label}/{key}", "f")

    unexpected = sorted(set(group) - {"targets", *TILE_ARRAYS, "bias", *COMPENSATION.values()})
    if unexpected:
        raise reader.error(where, f"unexpected members {unexpected[:4]} (format version {FORMAT_VERSION} stores targets, "
                                  f"{', '.join(TILE_ARRAYS)}, bias and {' and '.join(COMPENSATION.values())})")  # fmt: skip
    targets = dataset("targets")
    check_targets(targets, cfg.device, lambda problem: fail("targets", problem))
    state: dict[str, Any] = {"targets": targets}
    state.update({key: dataset(key) for key in TILE_ARRAYS})
    for key in ("seed", "reads", "epoch", "programmed_crc32"):
        state[key] = reader.int_attr(group, key, where)
    state["t_s"] = reader.float_attr(group, "t_s", where)
    if state["t_s"] > MAX_DRIFT_S:
        raise reader.error(where, f"attribute t_s must be at most {MAX_DRIFT_S:g} s, found {state['t_s']:g}")
    # files written before drift law 2 have none: they drifted by law 1 (device.DRIFT_LAW)
    state["drift_law"] = reader.int_attr(group, "drift_law", where) if "drift_law" in group.attrs else 1
    if state["drift_law"] not in (1, device.DRIFT_LAW):
        raise reader.error(where, f"attribute drift_law must be 1 or {device.DRIFT_LAW}, found {state['drift_law']}")
    bias_in_rows = reader.bool_attr(group, "bias_in_rows", where)
    bias = dataset("bias") if "bias" in group else None
    check_matrix(state, bias, bias_in_rows, cfg, fail)
    if any(name in group for name in COMPENSATION.values()):  # absent in files of earlier versions: read the probe again
        stored = {key: dataset(name) if name in group else None for key, name in COMPENSATION.items()}
        state.update(check_compensation(stored, state, cfg, lambda key, problem: fail(COMPENSATION[key], problem)))
    return MatrixRecord(state, bias, bias_in_rows)


def _block(key: str, group: h5py.Group, layers: set[str], reader: FileReader) -> BlockRecord:
    where = f"block {key!r}"
    layer = reader.text_attr(group, "layer", where)
    spec = reader.json_attr(group, "spec_json", where, dict)
    tensors = {name: reader.array(ds, f"{where}, dataset {name}", "f") for name, ds in reader.datasets(group)}
    check_block(layer, layers, spec, tensors, lambda problem: reader.error(where, problem))
    return BlockRecord(layer, spec, tensors)
