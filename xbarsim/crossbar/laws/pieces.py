"""Element-wise device physics over a whole array, in cache-sized pieces on several threads.

The device laws (``device``) are NumPy expressions over (2, n_in, n_out) conductance arrays. On a
large network (ResNet-18: 22 million devices) evaluating them whole streams a dozen float64
temporaries of hundreds of MB through memory on one core. ``map_pairs`` runs the same expression on
pieces of ``PIECE_PAIRS`` device pairs instead, whose temporaries stay in the L2 cache, on a pool of
Python threads (NumPy's ufuncs and the serial random-number kernels release the GIL). Every value
is computed by the same operations as on the whole array, and the random draws use the counters of
the piece's devices, so the result is the same bit for bit, whatever the piece size or thread count.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

# device pairs per piece: 128 K devices, 1 MB per float64 temporary (half an L2 cache). Each piece
# passes the GIL between the threads a dozen times; on the shared 2-core machine, where waking a
# thread can take a millisecond, ResNet-18's drift took 0.80-0.93 s with pieces of 2^14 pairs and
# 0.62-0.85 s with 2^16-2^17, programming a new seed 0.67-0.89 s against 0.49-0.73 s
PIECE_PAIRS = 1 << 16

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def workers() -> int:
    """Threads used for the pieces: Numba's thread count (NUMBA_NUM_THREADS), so one setting caps both."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there, so start a new pool when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(workers(), thread_name_prefix="xbarsim-pieces")
        return _pool


def map_pairs(func: Callable[..., tuple[np.ndarray, ...]], inputs: Sequence[np.ndarray], dtypes: Sequence[type]) -> list[np.ndarray]:
    """Arrays of the shape of ``inputs[0]`` ((2, ...), every input alike), one per dtype in ``dtypes``:
    piece by piece, ``func(first, *pieces)`` gets (2, m) views of the inputs for device pairs
    first .. first + m - 1 (flat index i * n_out + j) and returns the (2, m) pieces of the outputs.
    ``func`` must be element-wise, draw its random numbers at those counters, and be safe to run on
    several threads at once (NumPy, serial Numba kernels)."""
    shape = inputs[0].shape
    flat = [np.ascontiguousarray(a).reshape(2, -1) for a in inputs]
    n = flat[0].shape[1]
    outputs = [np.empty((2, n), dtype) for dtype in dtypes]

    def run(first: int) -> None:
        last = min(first + PIECE_PAIRS, n)
        for out, piece in zip(outputs, func(first, *(a[:, first:last] for a in flat))):
            out[:, first:last] = piece

    starts = range(0, n, PIECE_PAIRS)
    if len(starts) <= 1 or workers() == 1:
        for first in starts:
            run(first)
    else:
        for _ in _executor().map(run, starts):  # re-raises a piece's exception
            pass
    return [out.reshape(shape) for out in outputs]
