"""Checks of a command's input and output files before any work."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import XbarsimError

# command: (its input files, the files it writes, the folders it writes); an output may not be an input
_FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "map": (("checkpoint", "chip"), ("output",), ()),
    "train": (("distill", "hwa"), ("output",), ()),
    "robustness": (("checkpoint", "distill", "hwa"), ("plot",), ()),
    "calibrate": ((), ("output",), ()),  # -o may be the chip file itself: that is the in-place default
    "denoise": ((), ("output",), ()),
    "sweep": (("spec",), ("output",), ()),
    "report": (("store",), ("plot", "csv"), ()),
    "bench": ((), ("output",), ()),
    "demo": ((), (), ("output",)),
}


def check_outputs(outputs: dict[str, str | Path | None], inputs: list[str | Path | None],
                  folders: bool = False) -> None:  # fmt: skip
    """Refuse, before any work, an output that is one of the inputs (the same file, by any path) or
    that cannot be written where it is: below a regular file, or a folder where a file goes (or the reverse)."""
    existing = [Path(i) for i in inputs if i is not None and Path(i).is_file()]
    for option, output in outputs.items():
        if output is None:
            continue
        path = Path(output)
        clash = next((i for i in existing if path.exists() and os.path.samefile(path, i)), None)
        if clash is not None:
            raise XbarsimError(f"{option} {path}: this is also an input ({clash}); writing it would destroy that input")
        if folders and path.exists() and not path.is_dir():
            raise XbarsimError(f"{option} {path}: is a file, not a folder")
        if not folders and path.is_dir():
            raise XbarsimError(f"{option} {path}: is a folder; give a file name")
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
        path = getattr(args, name, None)
        if path is not None and Path(path).is_dir():
            raise XbarsimError(f"{path}: is a folder, not a file")
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
    inputs, outputs, folders = _FILES.get(args.command, ((), (), ()))
    given = [getattr(args, name, None) for name in inputs]
    check_outputs({_option(name): getattr(args, name, None) for name in outputs}, given)
    check_outputs({_option(name): getattr(args, name, None) for name in folders}, given, folders=True)


def _option(dest: str) -> str:
    return "-o" if dest == "output" else "--" + dest.replace("_", "-")
