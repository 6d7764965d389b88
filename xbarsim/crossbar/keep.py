"""How much memory the Numba backend's TileArrays may spend keeping their programmed devices.

The programmed devices are a deterministic function of the targets, the device config and the seed, so an
array need not keep them: a drift or read epoch can program them again. That costs time (on ResNet-18 about a
fifth of a drift: 0.32-0.37 s a drift kept against 0.50-0.59 s regenerated, 2-core machine), and keeping them
with the target pairs the laws take costs 18 bytes a weight after one-shot programming, 36 with
program-and-verify's counts, more for cells of several devices (200 MB for ResNet-18, 1.5-3 GB for a
GPT-2-small-sized network). So arrays keep them while all the kept ones of this process fit
``budget_bytes()``: by default an eighth of the machine's memory, or ``XBARSIM_KEEP_MB`` megabytes. An array
over the budget regenerates them as before; either way gives the same bits. Kept memory is memory the next
array cannot reuse: mapping another ResNet-18 into a process that holds three took 0.75-1.1 s kept against
0.57-0.68 s with a budget of 0 (docs/benchmarks.md), so a process that maps many chips and drifts each once
may set ``XBARSIM_KEEP_MB=0``.
"""

from __future__ import annotations

import os
import threading
import weakref

_lock = threading.Lock()
_kept: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # owner -> bytes it keeps (gone with the owner)


def budget_bytes() -> int:
    """The bytes all arrays of this process may keep: ``XBARSIM_KEEP_MB`` MB when set, else an eighth of the
    machine's physical memory (0 where it cannot be read)."""
    setting = os.environ.get("XBARSIM_KEEP_MB")
    if setting is not None:
        try:
            megabytes = float(setting)
        except ValueError:
            raise ValueError(f"XBARSIM_KEEP_MB must be a number of megabytes, got {setting!r}") from None
        if not megabytes >= 0:
            raise ValueError(f"XBARSIM_KEEP_MB must be >= 0, got {setting!r}")
        return int(megabytes * 2**20)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 8
    except (AttributeError, ValueError, OSError):
        return 0


def claim(owner: object, nbytes: int) -> bool:
    """Whether ``owner`` may keep ``nbytes`` more (then counted until ``release(owner)`` or its collection)."""
    budget = budget_bytes()
    with _lock:
        if sum(_kept.values()) + nbytes > budget:
            return False
        _kept[owner] = _kept.get(owner, 0) + nbytes
        return True


def release(owner: object) -> None:
    """``owner`` keeps nothing any more."""
    with _lock:
        _kept.pop(owner, None)


def kept_bytes() -> int:
    """The bytes kept now by the arrays of this process."""
    with _lock:
        return sum(_kept.values())
