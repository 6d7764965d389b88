"""Whole-file writes that a crash cannot half-do: a temporary file beside the target, then a rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import XbarsimError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_parent(path: Path) -> None:
    """Create ``path``'s folder, or say in one line why it cannot be made."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise XbarsimError(f"{path}: cannot create its folder: {exc.filename} is a file, not a folder") from None
    except OSError as exc:
        raise XbarsimError(f"{path}: cannot create its folder: {exc.strerror}") from None


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` whole, on error it is removed.

    The file is fsync'd before the rename and the folder after it, so a crash (even SIGKILL) leaves either the
    old file or the new one. The new file gets the permissions an ordinary ``open(path, "w")`` would give
    (0666 less the umask), not ``mkstemp``'s private 0600. A symbolic link is written through: its target
    is replaced (atomically, beside the target) and the link stays a link, as ``open(path, "w")`` would
    write through it. A path that exists and is not a regular file (a device, a FIFO) is refused.
    """
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        raise XbarsimError(f"{path}: is not a regular file; an output is written whole as one (give a file name)")
    make_parent(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
