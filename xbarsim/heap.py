"""Returning freed memory to the operating system between the large steps of a chip's set-up.

Programming, drifting and loading a large matrix make temporaries of tens of MB (the conductances of
every device pair, a few times over). glibc's malloc serves allocations below its mmap threshold (which
rises to 32 MiB after large frees) from its heap and keeps what is freed there: mapping a
GPT-2-small-sized network left 213 MiB of freed temporaries resident (1287 -> 1074 MiB after a trim).
``release()`` hands that memory back (``malloc_trim``); elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None)
_TRIM = getattr(_LIBC, "malloc_trim", None)


def release() -> None:
    """Give the heap's free memory back to the operating system (glibc), or do nothing."""
    if _TRIM is not None:
        _TRIM(0)
