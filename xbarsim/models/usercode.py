"""A network class the user names as ``package.module:Class``: the one place where xbarsim imports a
name it is given.

Only the command line (``--model``) and Python callers reach it. Nothing read from a file (a chip
file, a checkpoint, a sweep spec) is ever passed here: files describe their networks as data
(``netspec``), and the loaders that read them take a network the caller built, never a name to import.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from typing import Any

from torch import nn

from ..errors import XbarsimError
from . import netspec


def is_class_path(name: str) -> bool:
    """``package.module:Class`` rather than a zoo name."""
    return ":" in name


def import_class(spec: str, folder: str | None = None) -> Any:
    """The object named by ``package.module:Qualified.Name``. With ``folder`` (the command line gives
    its working folder), a module there is found first, as ``python -m`` finds it."""
    module_name, _, qualname = spec.partition(":")
    searched = f" (looked in {folder} and on sys.path)" if folder is not None else ""
    try:
        with _first_on_path(folder):
            obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise XbarsimError(f"cannot import model class {spec!r}: {exc}{searched}") from None
    return obj


@contextlib.contextmanager
def _first_on_path(folder: str | None) -> Iterator[None]:
    """``folder`` at the head of ``sys.path`` while importing (as ``python -m`` puts the working folder)."""
    if folder is None or folder in sys.path:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)


def build(spec: str, kwargs: dict[str, Any] | None = None, folder: str | None = None) -> nn.Module:
    """An instance of the class ``spec`` names, built with ``kwargs``. It is built on the meta device
    first and its parameter memory checked (``netspec.check_memory``) when the class allows that; a
    class that needs real tensors to build is built once, for real."""
    cls, kwargs = import_class(spec, folder), kwargs or {}
    if not callable(cls):
        raise XbarsimError(f"model {spec!r} is a {type(cls).__name__}, not a class")
    try:
        with netspec.on_meta():
            meta = cls(**kwargs)
    except Exception:  # noqa: BLE001 - the user's class may need memory to build: then it is built for real below
        meta = None
    if isinstance(meta, nn.Module):
        netspec.check_memory(meta, f"model {spec!r}")
    network = netspec.constructed(lambda: cls(**kwargs), f"model {spec!r}")
    if not isinstance(network, nn.Module):
        raise XbarsimError(f"model {spec!r} built a {type(network).__name__}, not a torch.nn.Module")
    return network

