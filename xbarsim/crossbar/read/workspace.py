"""Reusable work buffers: large per-call allocations cost page faults every time (a 150 MB
buffer takes longer to fault in than to fill), so the MVM borrows them from a per-thread pool.
Views of them can be kept under a key (``keep``, ``views``) until a buffer has to grow: at batch 1
asking for each buffer again costs as much as a kernel."""

from __future__ import annotations

import math
import threading

import numpy as np

MAX_KEPT = 256  # sets of views kept per thread; more are dropped all at once

_local = threading.local()


def buffer(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """An uninitialized C-contiguous array of ``shape``, reusing this thread's buffer ``name``.
    Valid until the next request for the same name on this thread. Growing a buffer drops every
    kept set of views (they would keep the old one alive)."""
    try:
        pool = _local.pool
    except AttributeError:
        pool = _local.pool = {}
    size = math.prod(shape)
    key = (name, dtype)
    flat = pool.get(key)
    if flat is None or flat.size < size:
        _kept().clear()
        flat = pool[key] = np.empty(max(size, 1), dtype)
    return flat[:size].reshape(shape)


def _kept() -> dict:
    try:
        return _local.kept
    except AttributeError:
        _local.kept = {}
        return _local.kept


def keep(key: tuple, arrays: tuple) -> tuple:
    """Keep ``arrays`` (views from ``buffer``) under ``key`` on this thread; returns them."""
    kept = _kept()
    if len(kept) >= MAX_KEPT:
        kept.clear()
    kept[key] = arrays
    return arrays


def views(key: tuple) -> tuple | None:
    """The arrays kept under ``key`` on this thread, or None (never kept, or a buffer has grown
    since). Like ``buffer``'s arrays they are valid until the next request for the same buffers."""
    try:
        return _local.kept.get(key)
    except AttributeError:
        return None


def release() -> None:
    """Free this thread's buffers."""
    _local.pool = {}
    _local.kept = {}
