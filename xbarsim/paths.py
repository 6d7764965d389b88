"""The files a command reads: each must be a regular file (a FIFO or a device would block or never
end), refused in one line that says what it is instead."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import XbarsimError

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))  # fmt: skip


def regular_file(path: str | Path, what: str = "") -> Path:
    """``path`` when it names a regular file (links followed). A missing file raises
    ``FileNotFoundError``, anything else that is not a regular file ``XbarsimError``; both name
    ``what`` (e.g. "checkpoint") and the path."""
    path = Path(path)
    head = f"{what} {path}" if what else str(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{head}: no such file") from None
    except OSError as exc:
        raise XbarsimError(f"{head}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise XbarsimError(f"{head}: is a folder, not a file")
    kind = next((name for test, name in _KINDS if test(mode)), None)
    if kind is not None:
        raise XbarsimError(f"{head}: is {kind}, not a regular file")
    return path
