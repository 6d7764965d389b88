"""Reading trained networks from checkpoint files, safely.

Accepted: an xbarsim checkpoint (``save_checkpoint``: zoo name, arguments, state_dict), a plain
state_dict (the model named separately), a dict holding a ``state_dict``, or, only when the user
trusts the file, a whole pickled module.
"""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_write
from ..errors import XbarsimError
from . import zoo
from .quant import QATConfig, QuantizationAware

FORMAT = "xbarsim-checkpoint"
_PARAMETRIZED = re.compile(r"\.parametrizations\.(\w+)\.original$")
_LEGACY_MAGIC = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)[:-1]  # torch.save before 1.6
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class CheckpointError(XbarsimError):
    """A checkpoint that cannot be used: names the file and the problem."""


def save_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Save a zoo model so that ``load_network(path)`` rebuilds it without further arguments,
    with its QAT quantizers (``model.qat``) if it was trained with them."""
    content = checkpoint_content(model)
    with atomic_write(path) as tmp:  # an interrupted save leaves the old checkpoint whole
        torch.save(content, tmp)


def checkpoint_content(model: nn.Module) -> dict[str, Any]:
    """What a checkpoint of zoo model ``model`` holds: plain data (names, tensors, QAT settings)."""
    name = getattr(type(model), "zoo_name", None)
    if name is None:
        raise XbarsimError(f"{type(model).__name__} is not a zoo model; save its state_dict and name the class when loading")
    content = {"format": FORMAT, "model": name, "kwargs": model.init_kwargs}
    # under QAT the float weights sit at "<layer>.parametrizations.weight.original"
    content["state_dict"] = {_PARAMETRIZED.sub(r".\1", key): value.cpu() for key, value in model.state_dict().items()}  # loads anywhere
    qat = getattr(model, "qat", None)
    if qat is not None:
        content["qat"] = dataclasses.asdict(qat.cfg)
    return content


def network_from_content(content: dict[str, Any]) -> nn.Module:
    """The zoo model that ``checkpoint_content`` described (trusted content: made in this run)."""
    network = build_model(content["model"], content["kwargs"])
    network.load_state_dict(content["state_dict"], strict=True)
    if content.get("qat") is not None:
        network.qat = QuantizationAware(network, QATConfig(**content["qat"]))
    return network.train(False)


def import_class(spec: str) -> Any:
    """The object named by ``package.module:Qualified.Name``."""
    module_name, _, qualname = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise XbarsimError(f"cannot import model class {spec!r}: {exc}") from exc
    return obj


def build_model(spec: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """A zoo name (``lenet5``) or an importable ``package.module:Class``, built with kwargs.

    Arguments the class does not take raise ``XbarsimError`` naming the model."""
    kwargs = kwargs or {}
    builder = (lambda **kw: zoo.build(spec, **kw)) if ":" not in spec else import_class(spec)
    try:
        return builder(**kwargs)
    except TypeError as exc:
        raise XbarsimError(f"model {spec!r}: bad arguments {sorted(kwargs)}: {exc}") from None


def load_network(path: str | Path, model: str | None = None, model_kwargs: dict[str, Any] | None = None,
                 allow_pickle: bool = False) -> nn.Module:  # fmt: skip
    """The trained network in ``path``, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: {'not a file' if path.exists() else 'no such file'}")
    _check_torch_format(path)
    content = _load(path, allow_pickle)
    if isinstance(content, nn.Module):
        return content.eval()
    if not isinstance(content, dict):
        raise CheckpointError(f"{path}: expected a state_dict or a module, found {type(content).__name__}")
    qat = None
    if content.get("format") == FORMAT:
        saved_model, saved_kwargs, state, qat = (content.get(k) for k in ("model", "kwargs", "state_dict", "qat"))
        if not (isinstance(saved_model, str) and isinstance(saved_kwargs, dict) and isinstance(state, dict)
                and isinstance(qat, (dict, type(None)))):  # fmt: skip
            raise CheckpointError(f"{path}: a damaged xbarsim checkpoint (model, kwargs, state_dict or qat mistyped)")
        try:
            network = build_model(saved_model, saved_kwargs) if model is None else build_model(model, model_kwargs)
        except XbarsimError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    else:
        state = content.get("state_dict", content)
        if model is None:
            raise CheckpointError(f"{path} is a plain state_dict: name the model (--model: a zoo name or module:Class)")
        network = build_model(model, model_kwargs)
    try:
        network.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        problem = " ".join(str(exc).split())
        raise CheckpointError(f"{path}: the weights do not fit {type(network).__name__}: {problem[:400]}") from None
    if qat is not None:
        try:
            network.qat = QuantizationAware(network, QATConfig(**qat))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad QAT settings: {exc}") from None
    return network.eval()


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
