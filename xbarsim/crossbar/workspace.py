"""Reusable work buffers: large per-call allocations cost page faults every time (a 150 MB
buffer takes longer to fault in than to fill), so the MVM borrows them from a per-thread pool."""

from __future__ import annotations

import math
import threading

import numpy as np

_local = threading.local()


def buffer(name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """An uninitialized C-contiguous array of ``shape``, reusing this thread's buffer ``name``.
    Valid until the next request for the same name on this thread."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    size = math.prod(shape)
    flat = pool.get((name, np.dtype(dtype)))
    if flat is None or flat.size < size:
        flat = np.empty(max(size, 1), dtype)
        pool[(name, np.dtype(dtype))] = flat
    return flat[:size].reshape(shape)


def release() -> None:
    """Free this thread's buffers."""
    _local.pool = {}
