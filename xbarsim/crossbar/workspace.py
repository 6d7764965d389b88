"""Reusable work buffers: large per-call allocations cost page faults every time (a 150 MB
buffer takes longer to fault in than to fill), so the MVM borrows them from a per-thread pool."""

from __future__ import annotations

import math
import threading

import numpy as np

_local = threading.local()


def buffer(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """An uninitialized C-contiguous array of ``shape``, reusing this thread's buffer ``name``.
    Valid until the next request for the same name on this thread."""
    try:
        pool = _local.pool
    except AttributeError:
        pool = _local.pool = {}
    size = math.prod(shape)
    key = (name, dtype)
    flat = pool.get(key)
    if flat is None or flat.size < size:
        flat = pool[key] = np.empty(max(size, 1), dtype)
    return flat[:size].reshape(shape)


def release() -> None:
    """Free this thread's buffers."""
    _local.pool = {}
