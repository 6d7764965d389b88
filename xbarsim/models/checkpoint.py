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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import zoo
from .quant import QATConfig, QuantizationAware

FORMAT = "xbarsim-checkpoint"
_PARAMETRIZED = re.compile(r"\.parametrizations\.(\w+)\.original$")


def save_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Save a zoo model so that ``load_network(path)`` rebuilds it without further arguments,
    with its QAT quantizers (``model.qat``) if it was trained with them."""
    name = getattr(type(model), "zoo_name", None)
    if name is None:
        raise ValueError(f"{type(model).__name__} is not a zoo model; save its state_dict and name the class when loading")
    content = {"format": FORMAT, "model": name, "kwargs": model.init_kwargs}
    # under QAT the float weights sit at "<layer>.parametrizations.weight.original"
    content["state_dict"] = {_PARAMETRIZED.sub(r".\1", key): value for key, value in model.state_dict().items()}
    qat = getattr(model, "qat", None)
    if qat is not None:
        content["qat"] = dataclasses.asdict(qat.cfg)
    torch.save(content, path)


def import_class(spec: str) -> Any:
    """The object named by ``package.module:Qualified.Name``."""
    module_name, _, qualname = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import model class {spec!r}: {exc}") from exc
    return obj


def build_model(spec: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """A zoo name (``lenet5``) or an importable ``package.module:Class``, built with kwargs."""
    kwargs = kwargs or {}
    return zoo.build(spec, **kwargs) if ":" not in spec else import_class(spec)(**kwargs)


def load_network(path: str | Path, model: str | None = None, model_kwargs: dict[str, Any] | None = None,
                 allow_pickle: bool = False) -> nn.Module:  # fmt: skip
    """The trained network in ``path``, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not allow_pickle:
            raise ValueError(
                f"{path} holds pickled Python objects (e.g. a whole module), which can run arbitrary code when loaded; "
                f"if you trust the file, allow it (--allow-pickle / allow_pickle=True)"
            ) from exc
        content = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    if isinstance(content, nn.Module):
        return content.eval()
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a state_dict or a module, found {type(content).__name__}")
    qat = None
    if content.get("format") == FORMAT:
        network = zoo.build(content["model"], **content["kwargs"]) if model is None else build_model(model, model_kwargs)
        state = content["state_dict"]
        qat = content.get("qat")
    else:
        state = content.get("state_dict", content)
        if model is None:
            raise ValueError(f"{path} is a plain state_dict: name the model (a zoo name or module:Class)")
        network = build_model(model, model_kwargs)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit {type(network).__name__}: {exc}") from exc
    if qat is not None:
        network.qat = QuantizationAware(network, QATConfig(**qat))
    return network.eval()
