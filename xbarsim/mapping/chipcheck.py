"""Checks of everything read from a chip file, before any of it is used.

``FileReader`` reads typed values (attributes, JSON, arrays) and refuses what is not plain data:
wrong dtypes (byte strings, complex numbers, objects), NaN or infinite values, links to other files,
external or virtual storage, and datasets that claim far more data than the file stores (a
decompression bomb). ``check_targets``, ``check_matrix`` and ``check_block`` check physical ranges
(target conductances within [g_min, g_max]) and shapes against the chip config. Every failure is a
one-line ``ChipFileError`` naming the file, the layer and the dataset.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pydantic

from ..config import ChipConfig, DeviceConfig
from ..crossbar.grid import TileGrid
from ..errors import XbarsimError, shown

# gzip (deflate) cannot shrink data more than ~1032:1; a dataset claiming more is forged or never written
MAX_COMPRESSION = 1100
CONDUCTANCE_SLACK = 1e-3  # relative to g_max: float rounding of target conductances at the ends of the range
_KINDS = {"f": "real floating-point numbers", "fiub": "real numbers or integers"}


class ChipFileError(XbarsimError):
    """A chip file that cannot be used: one line naming the file, the layer and the dataset."""


def one_line(text: str, limit: int = 400) -> str:
    """``text`` on one line of at most ``limit`` characters, control characters (from names in a file) escaped."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in " ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dumps(value: Any) -> str:
    """JSON for a file attribute (NaN and infinities refused)."""
    return json.dumps(value, allow_nan=False)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


class FileReader:
    """Typed reads from an open chip file; each refusal names the file and ``where``."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, where: str, problem: str) -> ChipFileError:
        """``where`` names the layer and dataset ("" for the file as a whole)."""
        return ChipFileError(one_line(f"{self.path}: {where}: {problem}" if where else f"{self.path}: {problem}"))

    # ------------------------------------------------------------ objects
    def _member(self, parent: h5py.Group, name: str, where: str, kind: type) -> Any:
        link = parent.get(name, getlink=True)
        if link is None:
            raise self.error(where, f"missing {kind.__name__.lower()} {name!r}")
        if not isinstance(link, h5py.HardLink):
            raise self.error(where, f"{name!r} is a link ({type(link).__name__}); a chip file holds its data itself")
        obj = parent[name]
        if not isinstance(obj, kind):
            raise self.error(where, f"{name!r} must be a {kind.__name__.lower()}, found a {type(obj).__name__.lower()}")
        return obj

    def group(self, parent: h5py.Group, name: str, where: str) -> h5py.Group:
        return self._member(parent, name, where, h5py.Group)

    def dataset(self, parent: h5py.Group, name: str, where: str) -> h5py.Dataset:
        return self._member(parent, name, where, h5py.Dataset)

    def datasets(self, group: h5py.Group) -> list[tuple[str, h5py.Dataset]]:
        """The datasets of a flat group (any subgroup or link is refused)."""
        where = f"group {group.name}"
        return [(name, self.dataset(group, name, where)) for name in group]

    # ------------------------------------------------------------ attributes
    def _attr(self, obj: h5py.HLObject, key: str, where: str) -> Any:
        if key not in obj.attrs:
            raise self.error(where, f"missing attribute {key}")
        return obj.attrs[key]

    def int_attr(self, obj: h5py.HLObject, key: str, where: str) -> int:
        """An integer attribute >= 0 (seeds, counters, versions)."""
        value = self._attr(obj, key, where)
        if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 0:
            raise self.error(where, f"attribute {key} must be an integer >= 0, found {shown(value)}")
        return int(value)

    def float_attr(self, obj: h5py.HLObject, key: str, where: str) -> float:
        """A finite real attribute >= 0 (times)."""
        value = self._attr(obj, key, where)
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        if not ok or not math.isfinite(value) or value < 0:
            raise self.error(where, f"attribute {key} must be a finite number >= 0, found {shown(value)}")
        return float(value)

    def bool_attr(self, obj: h5py.HLObject, key: str, where: str) -> bool:
        value = self._attr(obj, key, where)
        if not isinstance(value, (bool, np.bool_)):
            raise self.error(where, f"attribute {key} must be true or false, found {shown(value)}")
        return bool(value)

    def text_attr(self, obj: h5py.HLObject, key: str, where: str) -> str:
        value = self._attr(obj, key, where)
        if not isinstance(value, str):
            raise self.error(where, f"attribute {key} must be text, found {shown(value)}")
        return value

    def json_attr(self, obj: h5py.HLObject, key: str, where: str, types: type | tuple[type, ...]) -> Any:
        """A JSON attribute of the given type(s); NaN and infinities refused."""
        text = self.text_attr(obj, key, where)
        try:
            value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
        except (ValueError, RecursionError) as exc:
            raise self.error(where, f"attribute {key} is not valid JSON ({exc})") from None
        if not isinstance(value, types):
            raise self.error(where, f"attribute {key} has the wrong type of JSON value ({type(value).__name__})")
        return value

    def config(self, group: h5py.Group) -> ChipConfig:
        """The chip config, validated again; laws a later xbarsim changed keep the form the file was written with
        (``written_laws``)."""
        data = self.json_attr(group, "json", "config", dict)  # refuses non-JSON, NaN and infinities first
        try:
            return ChipConfig.model_validate(written_laws(data))
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()[:5])
            raise self.error("config", f"not a valid chip config ({problems})") from None

    # ------------------------------------------------------------ arrays
    def array(self, ds: h5py.Dataset, where: str, kinds: str) -> np.ndarray:
        """The dataset's values, if they are of a dtype kind in ``kinds`` (NumPy kind letters), stored in
        this file and, for floats, finite."""
        if ds.dtype.kind not in kinds or ds.dtype.names is not None or ds.dtype.subdtype is not None:
            raise self.error(where, f"must hold {_KINDS[kinds]}, found {_dtype_words(ds.dtype)}")
        if ds.external or ds.is_virtual:
            raise self.error(where, "refers to data outside this file (external or virtual storage)")
        stored = ds.id.get_storage_size()
        if ds.size * ds.dtype.itemsize > MAX_COMPRESSION * stored + 4096:
            raise self.error(where, f"claims {ds.size:,} values of shape {ds.shape} but the file stores only {stored:,} bytes of them")
        try:
            value = np.asarray(ds[()])
        except OSError as exc:
            raise self.error(where, f"damaged or incomplete chip file (cannot read the data: {exc})") from None
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise self.error(where, f"holds NaN or infinite values ({int(np.sum(~np.isfinite(value)))} of {value.size})")
        return value.astype(value.dtype.newbyteorder("="), copy=False)  # torch reads native byte order only


def check_targets(targets: np.ndarray, device: DeviceConfig, fail: Callable[[str], ChipFileError]) -> None:
    """Signed target conductances (inputs, outputs): |value| within [g_min, g_max] (uS)."""
    if targets.ndim != 2 or 0 in targets.shape:
        raise fail(f"must have shape (inputs, outputs) with inputs, outputs >= 1, found {targets.shape}")
    slack = CONDUCTANCE_SLACK * device.g_max_us
    low, high = device.g_min_us - slack, device.g_max_us + slack
    magnitude = np.abs(targets)
    outside = (magnitude < low) | (magnitude > high)
    if np.any(outside):
        found = float(targets[outside][np.argmax(np.abs(magnitude[outside] - device.g_max_us))])
        raise fail(f"target conductances (uS, G+ or -G-) must have a magnitude in [g_min, g_max] = "
                   f"[{device.g_min_us:g}, {device.g_max_us:g}], found {found:.4g}")  # fmt: skip


def check_matrix(state: dict[str, Any], bias: np.ndarray | None, bias_in_rows: bool, cfg: ChipConfig,
                 fail: Callable[[str, str], ChipFileError]) -> None:  # fmt: skip
    """Check one matrix's tile arrays (``TileArray.state()`` layout, targets already checked) against the
    chip config; ``fail(dataset, problem)`` makes the error."""
    n_in, n_out = state["targets"].shape
    rows, cols = cfg.tile.rows, cfg.tile.cols
    n_p, n_q = TileGrid.for_matrix(n_in, n_out, rows, cols).shape
    for name, shape in {"scales": (n_p, n_out), "dac_bounds": (n_p,), "adc_bounds": (n_p, n_q)}.items():
        if state[name].shape != shape:
            raise fail(name, f"has shape {state[name].shape}, but the targets ({n_in} inputs x {n_out} outputs on {rows}x{cols} "
                             f"tiles) need {shape}: the targets or this array have the wrong shape")  # fmt: skip
    if np.any(state["scales"] <= 0):
        raise fail("scales", "weight scales must be > 0")
    for name, converter in (("dac_bounds", cfg.tile.dac), ("adc_bounds", cfg.tile.adc)):
        bounds = state[name]
        if np.any(bounds <= 0):
            raise fail(name, "converter bounds must be > 0")
        fixed = np.float32(converter.bound if converter.bound is not None else 1.0)
        if converter.range != "calibrated" and np.any(bounds != fixed):
            raise fail(name, f"range {converter.range!r} has one bound for every tile ({fixed:g}), found others")
    if bias_in_rows and cfg.mapping.bias != "rows":
        raise fail("bias", "attribute bias_in_rows is set but the config's mapping.bias is not 'rows'")
    if bias is not None and (bias_in_rows or bias.shape != (n_out,)):
        raise fail("bias", f"must have shape ({n_out},) and only when the bias is not stored in rows, found {bias.shape}")


def check_compensation(stored: dict[str, np.ndarray | None], state: dict[str, Any], cfg: ChipConfig,
                       fail: Callable[[str, str], ChipFileError]) -> dict[str, np.ndarray | None]:  # fmt: skip
    """Check a matrix's stored drift-compensation ``reference`` and ``gain`` (1-D float arrays or None)
    against the config and the matrix's read state; returns them as ``TileArray`` keeps them (float32,
    0-d for global compensation)."""
    mode = cfg.drift_compensation
    if mode == "none":
        found = next(key for key, value in stored.items() if value is not None)
        raise fail(found, "is stored, but the config's drift_compensation is 'none'")
    if stored["reference"] is None:
        raise fail("reference", "is missing, but drift_gain is stored (a chip file stores both or neither)")
    read_again = (state["t_s"], state["epoch"]) != (0.0, 0)
    if (stored["gain"] is not None) != read_again:
        raise fail("gain", "must be stored exactly when the chip was read again after programming (t_s > 0 or epoch > 0), "
                           f"found {'one' if stored['gain'] is not None else 'none'} at t_s = {state['t_s']:g}, epoch {state['epoch']}")  # fmt: skip
    n_out = state["targets"].shape[1]
    shape = (n_out,) if mode == "column" else (1,)
    result: dict[str, np.ndarray | None] = {}
    for key, value in stored.items():
        if value is None:
            result[key] = None
            continue
        if value.shape != shape:
            raise fail(key, f"has shape {value.shape}, expected {shape} for {mode} drift compensation of {n_out} outputs")
        if np.any(value < 0):
            raise fail(key, "a probe level or gain must be >= 0")
        value = value.astype(np.float32)
        result[key] = value if mode == "column" else value.reshape(())
    return result


def check_block(layer: str, layers: set[str], spec: dict[str, Any], tensors: dict[str, np.ndarray],
                fail: Callable[[str], ChipFileError]) -> None:  # fmt: skip
    """Check a denoising block: attached to an analog layer, a sound spec, tensors of its shapes."""
    if layer not in layers:
        raise fail(f"is attached to {layer[:60]!r}, which is not an analog layer of this chip")
    sizes_ok = all(isinstance(spec.get(k), int) and not isinstance(spec.get(k), bool) and spec[k] >= 1 for k in ("channels", "hidden"))
    if set(spec) != {"channels", "hidden", "channel_dim"} or not sizes_ok or spec["channel_dim"] not in (1, -1):
        raise fail("spec_json must be {channels: int >= 1, hidden: int >= 1, channel_dim: 1 or -1}")
    c, h = spec["channels"], spec["hidden"]
    expected = {"down.weight": (h, c), "down.bias": (h,), "up.weight": (c, h), "up.bias": (c,)}
    found = {name: value.shape for name, value in tensors.items()}
    if found != expected:
        raise fail(f"datasets must be {expected}, found {found}")


def _dtype_words(dtype: np.dtype) -> str:
    words = {"S": "byte strings", "U": "text", "O": "objects (variable-length strings)", "c": "complex numbers",
             "V": "raw or compound records", "b": "booleans", "f": "floating-point numbers", "i": "integers", "u": "integers"}  # fmt: skip
    return f"{words.get(dtype.kind, 'values')} ({dtype})"


def written_laws(config: dict) -> dict:
    """A stored config with the fields that xbarsim 0.3 added to change a law set to the law before them, where a
    file (written before) lacks them: PCM write noise not rescaled by g_max (``g_max_reference_us`` = g_max) and the
    PCM drift exponent drawn at G_prog (``exponent_from: programmed``). Such a file then loads to the chip it held
    (docs/file-formats.md); a file written since stores both fields."""
    device = config.get("device")
    if not isinstance(device, dict):
        return config
    write, drift = device.get("write_noise"), device.get("drift")
    if isinstance(write, dict) and write.get("kind") == "pcm" and "g_max_reference_us" not in write:
        write["g_max_reference_us"] = device.get("g_max_us", 25.0)
    if isinstance(drift, dict) and drift.get("kind") == "pcm" and "exponent_from" not in drift:
        drift["exponent_from"] = "programmed"
    return config
