"""Example sweep specs shipped inside the package (``xbarsim/examples/*.yaml``), so that an
installed xbarsim can run them from any folder: ``xbarsim sweep --example read_noise_adc -o
sweep.h5``, or ``xbarsim examples DIR`` to copy them out and edit them.

The shipped specs name no files (a zoo model trained before the sweep, a built-in data set, a
preset chip), so they run the same wherever they are started or copied to."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..atomic import make_parent
from ..errors import XbarsimError

SUFFIX = ".yaml"
FOLDER = Path(__file__).parent  # installed as package data (pyproject.toml), next to this module


def names() -> list[str]:
    """The examples' names (file names without ``.yaml``), sorted."""
    return sorted(entry.stem for entry in FOLDER.glob("*" + SUFFIX))


def path(name: str) -> Path:
    """The file of the example ``name`` (``read_noise_adc`` or ``read_noise_adc.yaml``)."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    if stem not in names():
        raise XbarsimError(f"no example named {name!r}; choose from {', '.join(names())}")
    return FOLDER / (stem + SUFFIX)


def summary(name: str) -> str:
    """The first comment line of an example: what it sweeps."""
    for line in path(name).read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def copy_to(folder: str | Path, overwrite: bool = False) -> list[Path]:
    """Copy every example into ``folder`` (made if missing); refuses to replace an existing file
    unless ``overwrite``. Returns the files written."""
    folder = Path(folder)
    targets = [folder / (name + SUFFIX) for name in names()]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise XbarsimError(f"{', '.join(existing)} already exist(s); pass --force to overwrite")
    make_parent(targets[0])
    for name, target in zip(names(), targets):
        shutil.copyfile(path(name), target)
    return targets
