"""Checks of a command's input and output files before any work.

An output is never one of the inputs, by any path: links (symbolic and hard) are resolved before
paths are compared. The one way to replace an input is to say so: ``calibrate`` and ``denoise``
take ``--in-place`` instead of ``-o``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import XbarsimError
from ..paths import regular_file

# command: (its inputs, the files it writes, the folders it writes); an output may not be an input
_FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "map": (("checkpoint", "chip"), ("output",), ()),
    "train": (("distill", "hwa", "data"), ("output",), ()),
    "robustness": (("checkpoint", "data", "noise", "distill", "hwa"), ("plot",), ()),
    "calibrate": (("chip_file", "data"), ("output",), ()),
    "denoise": (("chip_file", "data"), ("output",), ()),
    "sweep": (("spec",), ("output",), ()),  # and the files the spec names: cmd_sweep
    "report": (("store",), ("plot", "csv"), ()),
    "bench": ((), ("output",), ()),
    "demo": ((), (), ("output",)),
}


def check_outputs(outputs: dict[str, str | Path | None], inputs: list[str | Path | None],
                  folders: bool = False) -> None:  # fmt: skip
    """Refuse, before any work, an output that is one of the inputs (the same file by any path: links
    resolved, hard links by their inode), that names the same file as another output, that is not a
    regular file (a device, a FIFO: an output is replaced whole), or that cannot be written where it is:
    below a regular file, or a folder where a file goes (or the reverse)."""
    existing = [Path(i) for i in inputs if i is not None and Path(i).is_file()]
    seen: dict[str, str] = {}
    for option, output in outputs.items():
        if output is None:
            continue
        path = Path(output)
        clash = next((i for i in existing if path.exists() and os.path.samefile(path, i)), None)
        if clash is not None:
            in_place = " (to replace the chip file itself, use --in-place instead of -o)" if option == "-o" else ""
            raise XbarsimError(f"{option} {path}: this is also an input ({clash}); writing it would destroy that input{in_place}")
        resolved = os.path.realpath(path)
        if resolved in seen:
            raise XbarsimError(f"{option} {path}: the same file as {seen[resolved]}; give each output its own file")
        seen[resolved] = f"{option} {path}"
        if folders and path.exists() and not path.is_dir():
            raise XbarsimError(f"{option} {path}: is a file, not a folder")
        if not folders and path.is_dir():
            raise XbarsimError(f"{option} {path}: is a folder; give a file name")
        if not folders and path.exists() and not path.is_file():
            regular_file(path, option)  # names what it is instead
        ancestor = (path if folders else path.parent).absolute()
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise XbarsimError(f"{option} {path}: cannot create its folder: {ancestor} is a file, not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise XbarsimError(f"{option} {path}: cannot write in {ancestor} (permission denied)")


_REQUIRED_INPUTS = ("checkpoint", "chip_file", "spec", "store")
"""Positional file arguments: checked before any work, so a typo costs nothing."""


def check_files(args: argparse.Namespace) -> None:
    for name in _REQUIRED_INPUTS:
        if getattr(args, name, None) is not None:
            regular_file(getattr(args, name))
    inputs, outputs, folders = _FILES.get(args.command, ((), (), ()))
    given = [path for name in inputs for path in input_files(name, getattr(args, name, None))]
    check_outputs({_option(name): getattr(args, name, None) for name in outputs}, given)
    check_outputs({_option(name): getattr(args, name, None) for name in folders}, given, folders=True)


def input_files(name: str, value: str | None) -> list[str]:
    """The files an input argument reads: itself; for ``data`` (``mnist:PATH``, ``cifar10:PATH``) every file
    in its folder; for ``noise`` (``chip:FILE``) the chip file; for a sweep ``store`` its journal too."""
    if value is None:
        return []
    if name in ("data", "noise"):
        kind, _, path = value.partition(":")
        if not path or (name == "noise" and kind != "chip"):
            return []
        return [str(p) for p in Path(path).iterdir()] if Path(path).is_dir() else [path]
    if name == "store":
        return [value, f"{value}.journal"]
    return [value]


def _option(dest: str) -> str:
    return "-o" if dest == "output" else "--" + dest.replace("_", "-")

