"""Progress bars (tqdm, on stderr) for long Python-level calls: mapping, saving and loading chips."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

AUTO_AFTER_S = 3.0  # progress=None: a bar appears only once the call has run this long
Item = TypeVar("Item")


def progress_bar(items: Iterable[Item], desc: str, unit: str, progress: bool | None = None, total: int | None = None) -> Iterable[Item]:
    """``items``, with a bar when ``progress`` is True, none when False, and when None only if
    the loop is still running after ``AUTO_AFTER_S`` seconds (short calls stay quiet)."""
    return tqdm(items, desc=desc, unit=unit, total=total, disable=progress is False,
                delay=0 if progress else AUTO_AFTER_S, file=sys.stderr)  # fmt: skip
