"""Reading trained networks from checkpoint files, safely: a checkpoint is data, never code.

Accepted: an xbarsim checkpoint (``save_checkpoint``: the network as a ``netspec`` description, its
state_dict, its QAT settings), a plain state_dict (the network given by the caller), a dict holding a
``state_dict``, or, only when the user trusts the file, a whole pickled module.

A network described in a file is built on torch's meta device from the description (a zoo name or
allow-listed ``torch.nn`` layers: nothing named in the file is imported), its memory and every tensor
of the file checked against it, and only then given the file's tensors. The loaders here never import
a name: a ``package.module:Class`` is built by the caller (``usercode.build``) and passed as a network.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_write
from ..configfile import check_plain_data, strict_model_of, validate
from ..errors import XbarsimError, shown
from ..paths import regular_file
from . import netspec
from .quant import QATConfig, QuantizationAware

FORMAT = "xbarsim-checkpoint"
FORMAT_VERSION = 2
_FIELDS = {"format", "format_version", "network", "state_dict", "qat"}
_FIELDS_V1 = {"format", "model", "kwargs", "state_dict", "qat"}  # version 1: ``model`` a zoo name, ``kwargs`` its arguments
_PARAMETRIZED = re.compile(r"\.parametrizations\.(\w+)\.original$")
_LEGACY_MAGIC = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)[:-1]  # torch.save before 1.6
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_QAT_FIELDS = strict_model_of(QATConfig)


class CheckpointError(XbarsimError):
    """A checkpoint that cannot be used: names the file and the problem."""


def save_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Save a network that ``netspec`` can describe (a zoo model, or allow-listed torch.nn layers) so
    that ``load_network(path)`` rebuilds it without further arguments, with its QAT quantizers
    (``model.qat``) if it was trained with them."""
    content = checkpoint_content(model)
    with atomic_write(path) as tmp:  # an interrupted save leaves the old checkpoint whole
        torch.save(content, tmp)


def describable(model: nn.Module) -> dict[str, Any]:
    """The netspec description a checkpoint of ``model`` holds; XbarsimError if it has none."""
    description = netspec.describe(model)
    if description is None:
        raise XbarsimError(f"{type(model).__name__} is neither a zoo model nor a network of allow-listed torch.nn layers, "
                           f"so a checkpoint cannot describe it: save its state_dict and pass the network when loading it")  # fmt: skip
    return description


def checkpoint_content(model: nn.Module) -> dict[str, Any]:
    """What a checkpoint of ``model`` holds: plain data (a description, tensors, QAT settings)."""
    content = {"format": FORMAT, "format_version": FORMAT_VERSION, "network": describable(model)}
    # under QAT the float weights sit at "<layer>.parametrizations.weight.original"
    content["state_dict"] = {_PARAMETRIZED.sub(r".\1", key): value.cpu() for key, value in model.state_dict().items()}  # loads anywhere
    qat = getattr(model, "qat", None)
    if qat is not None:
        content["qat"] = dataclasses.asdict(qat.cfg)
    return content


def network_from_content(content: Any, where: str = "checkpoint") -> nn.Module:
    """The network an xbarsim checkpoint's content describes, with its weights and quantizers, in
    eval mode. ``where`` names the content's source in errors."""
    check_plain_data(content, where)
    description, state, qat = _fields(content, where)
    return _loaded(_described(description, where), state, qat, where, assign=True)


def load_network(path: str | Path, model: str | nn.Module | None = None, model_kwargs: dict[str, Any] | None = None,
                 allow_pickle: bool = False) -> nn.Module:  # fmt: skip
    """The trained network in ``path``, in eval mode.

    ``model`` is the network for a plain state_dict, or replaces the one a checkpoint describes: a zoo
    name (built with ``model_kwargs`` as a description is) or a network you built (your own class:
    ``usercode.build("package.module:Class", kwargs)`` or any instance). A name is never imported here.
    """
    path = regular_file(path, "checkpoint")
    _check_torch_format(path)
    content = _load(path, allow_pickle)
    if isinstance(content, nn.Module):
        return content.eval()
    if not isinstance(content, dict):
        raise CheckpointError(f"{path}: expected a state_dict or a module, found {type(content).__name__}")
    check_plain_data(content, str(path))
    if content.get("format") == FORMAT:
        description, state, qat = _fields(content, str(path))
    else:
        description, state, qat = None, content.get("state_dict", content), None
    if isinstance(model, nn.Module):
        return _loaded(model, state, qat, str(path), assign=False)
    if model is not None:
        description = _zoo_description(model, model_kwargs)
    elif model_kwargs:
        raise XbarsimError("model arguments were given without a model to build")
    if description is None:
        raise CheckpointError(f"{path} is a plain state_dict: name the model (--model: a zoo name or module:Class)")
    return _loaded(_described(description, str(path)), state, qat, str(path), assign=True)


def _zoo_description(name: Any, kwargs: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(name, str) or name not in netspec.zoo.ZOO:
        hint = (": build your own class with xbarsim.models.usercode.build() and pass the network"
                if isinstance(name, str) and ":" in name else "")  # fmt: skip
        raise XbarsimError(f"unknown zoo model {str(name)[:60]!r}; the zoo has {', '.join(sorted(netspec.zoo.ZOO))}{hint}")
    return {"zoo": name, "kwargs": kwargs or {}}


def _fields(content: Any, where: str) -> tuple[dict[str, Any], Any, Any]:
    """(network description, state_dict, qat) of an xbarsim checkpoint's content; every field checked by
    name. Version 1 (``model``, ``kwargs``) is read as the zoo description it stands for."""
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not an xbarsim checkpoint (no format {FORMAT!r})")
    version = content.get("format_version", 1)
    if type(version) is not int or version not in (1, FORMAT_VERSION) or (version == 1 and "format_version" in content):
        raise CheckpointError(f"{where}: checkpoint format version {shown(version)}; this xbarsim reads versions 1 and {FORMAT_VERSION}")
    allowed = _FIELDS if version == FORMAT_VERSION else _FIELDS_V1
    unknown = [key for key in content if key not in allowed]
    if unknown:
        raise CheckpointError(f"{where}: unknown field {shown(unknown[0])} in an xbarsim checkpoint of version {version} "
                              f"(allowed: {', '.join(sorted(allowed))})")  # fmt: skip
    missing = [key for key in sorted(allowed - {"qat", "kwargs"}) if key not in content]
    if missing:
        raise CheckpointError(f"{where}: a damaged xbarsim checkpoint: field {missing[0]} is missing")
    if version == FORMAT_VERSION:
        description = content["network"]
    else:
        description = {"zoo": content["model"], "kwargs": content.get("kwargs", {})}
    return description, content["state_dict"], content.get("qat")


def _described(description: Any, where: str) -> nn.Module:
    """The network of ``description`` on the meta device (its memory checked); errors name ``where``."""
    try:
        return netspec.build(description, device="meta")
    except XbarsimError as exc:
        raise CheckpointError(f"{where}: network: {exc}") from None


def _loaded(network: nn.Module, state: Any, qat: Any, where: str, assign: bool) -> nn.Module:
    """``network`` with the weights of ``state`` (each checked against the network's tensor) and the
    quantizers of ``qat``, in eval mode. ``assign``: the network is on the meta device and takes the
    checked tensors themselves."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: state_dict must be a mapping of names to tensors, found {type(state).__name__}")
    expected = network.state_dict()
    missing, unexpected = [k for k in expected if k not in state], [k for k in state if k not in expected]
    if missing or unexpected:
        keys = [f"{name} {[str(k)[:60] for k in keys[:3]]}" for name, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise CheckpointError(f"{where}: the weights do not fit {type(network).__name__}: {', '.join(keys)}")
    tensors = {key: _checked_tensor(state[key], want, f"{where}: the weights do not fit {type(network).__name__}: {key}")
               for key, want in expected.items()}  # fmt: skip
    network.load_state_dict(tensors, strict=True, assign=assign)
    if qat is not None:
        fields = validate(_QAT_FIELDS, qat, f"{where}: qat").model_dump()
        try:
            network.qat = QuantizationAware(network, QATConfig(**fields))
        except ValueError as exc:
            raise CheckpointError(f"{where}: qat: {exc}") from None
    return network.eval()


def _checked_tensor(value: Any, want: torch.Tensor, what: str) -> torch.Tensor:
    """``value`` as a dense CPU tensor of ``want``'s shape and dtype, its values finite; else the problem."""
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{what} is a {type(value).__name__}, not a tensor")
    if value.layout != torch.strided or value.is_quantized or value.device.type != "cpu":
        raise CheckpointError(f"{what} is a {value.layout} tensor on {value.device}; a checkpoint holds dense CPU tensors")
    if tuple(value.shape) != tuple(want.shape):
        raise CheckpointError(f"{what} has shape {tuple(value.shape)}, the network's {tuple(want.shape)}")
    if value.is_complex() or value.is_floating_point() != want.is_floating_point():
        raise CheckpointError(f"{what} holds {str(value.dtype).removeprefix('torch.')} values, the network's "
                              f"{str(want.dtype).removeprefix('torch.')}")  # fmt: skip
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise CheckpointError(f"{what} holds NaN or infinite values")
    return value.to(want.dtype)


def _check_torch_format(path: Path) -> None:
    """Refuse files that ``torch.save`` did not write, before unpickling anything."""
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_MAGIC))
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                if any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist()):
                    return
        except (zipfile.BadZipFile, OSError, ValueError):
            raise CheckpointError(f"{path}: not a torch checkpoint (a damaged zip file)") from None
        raise CheckpointError(f"{path}: not a torch checkpoint (a zip file without torch's data.pkl)")
    if head == _LEGACY_MAGIC:
        return
    if head.startswith(_HDF5_MAGIC):
        raise CheckpointError(f"{path}: not a torch checkpoint but an HDF5 file (chip files go to `xbarsim eval`)")
    raise CheckpointError(f"{path}: not a torch checkpoint (neither torch.save's zip archive nor its older format)")


def _load(path: Path, allow_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not allow_pickle:
            raise CheckpointError(
                f"{path} holds pickled Python objects (e.g. a whole module), which can run arbitrary code when loaded; "
                f"if you trust the file, allow it (--allow-pickle / allow_pickle=True)"
            ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({' '.join(str(exc).split())[:300]})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - unpickling a trusted file can fail in any way; say how, in one line
        problem = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{path}: cannot unpickle this checkpoint ({type(exc).__name__}: {problem})") from None
