"""Who runs the read path's BLAS products: NumPy's OpenBLAS on one thread, a product's parts spread
over a pool of Python threads (docs/benchmarks.md, "Threads").

OpenBLAS's worker threads spin for about 2^28 cycles (~0.1 s) after every threaded call before they
sleep (``THREAD_TIMEOUT``, read only when the library loads). A network on a chip alternates BLAS
products with torch's own operations and Numba passes, so on a small machine a spinning OpenBLAS
worker takes a core from every torch and Numba region after it. Measured on the 2-core development
machine (torch imported first, pcm preset, warm forward): ViT (4 x 128, batch 64) 0.37 s with
threaded OpenBLAS, 0.15 s with OpenBLAS on one thread; chargpt (batch 32) 0.60 s -> 0.17 s; but
ResNet-18 0.99 s -> 1.16 s and a 512 x 512 tile's ratio to a GEMM 0.53 -> 0.35, whose time is
large GEMMs that then ran on one core.

Hence: while a product runs, NumPy's BLAS is held at one thread (a process-wide setting, restored
when the last product ends), and a large GEMM is cut into parts along its rows, one per thread of a
pool whose idle threads sleep. Each part is computed as the whole would be: parts start at a multiple
of 2 GEMM_UNROLL_M and hold at least ``MIN_PART_MACS`` multiply-adds, above OpenBLAS's small-matrix
and direct SkylakeX kernels (``tests/test_blas.py`` checks the bits). The pool has as many threads
as NumPy's BLAS had when xbarsim first took it (``OPENBLAS_NUM_THREADS`` and the like are obeyed),
and never more than the BLAS thread limit in force at each product (``threadpoolctl`` limits are
obeyed too).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

MIN_PART_MACS = 1 << 23  # above OpenBLAS's direct SkylakeX sgemm (< 28 * 512 * 512 multiply-adds)

Job = Callable[[], object]


class _OneThreadBlas:
    """A re-entrant, thread-safe hold of a BLAS library at one thread: the first holder saves the
    library's thread count, the last one restores it."""

    def __init__(self, library) -> None:
        self._library, self._lock, self._holders, self._lent = library, threading.Lock(), 0, 0
        self.initial = self.saved = library.get_num_threads()

    def __enter__(self) -> _OneThreadBlas:
        with self._lock:
            if self._holders == 0:
                self.saved = self._library.get_num_threads()
                if self.saved != 1:
                    self._library.set_num_threads(1)
            self._holders += 1
        return self

    @property
    def held(self) -> bool:
        """Whether the BLAS is held at one thread now (held, and not lent back to its own threads)."""
        return self._holders > 0 and self._lent == 0

    @contextmanager
    def lent(self) -> Iterator[None]:
        """While the body runs, a held BLAS gets back the threads it had before the hold; held again after."""
        self._lend(+1)
        try:
            yield
        finally:
            self._lend(-1)

    def _lend(self, step: int) -> None:
        """step +1: one more lender; -1: one fewer. The first lender gives a held BLAS its threads, the last holds it again."""
        with self._lock:
            self._lent += step
            first_or_last = self._lent == (1 if step > 0 else 0)
            if first_or_last and self._holders > 0 and self.saved != 1:
                self._library.set_num_threads(self.saved if step > 0 else 1)

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0 and self.saved != 1:
                self._library.set_num_threads(self.saved)


@functools.cache
def blas_libraries():
    """threadpoolctl's controller of the BLAS libraries loaded in this process (found once: the search
    takes milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


@functools.cache
def _hold() -> _OneThreadBlas:
    """The hold on NumPy's BLAS, and the pool's size: its thread count when xbarsim first took it."""
    from .blas import numpy_blas_path

    path = numpy_blas_path()
    return _OneThreadBlas(next(lib for lib in blas_libraries().lib_controllers if lib.filepath == path))


class _Pool:
    """``threads`` - 1 Python threads for a product's parts, made for this process (a forked child
    makes its own: threads do not survive a fork)."""

    def __init__(self, threads: int) -> None:
        self.threads, self.pid = threads, os.getpid()
        self._executor = ThreadPoolExecutor(threads - 1, thread_name_prefix="xbarsim-blas") if threads > 1 else None

    def run(self, groups: Sequence[Sequence[Job]]) -> None:
        """Run each group's jobs in order, the groups side by side (the first on the calling thread)."""
        futures = [self._executor.submit(_run_all, group) for group in groups[1:]] if self._executor else []
        _run_all(groups[0])
        for future in futures:
            future.result()


def _run_all(jobs: Sequence[Job]) -> None:
    for job in jobs:
        job()


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _the_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = _Pool(max(1, _hold().initial))
        return _pool


@contextmanager
def pooled() -> Iterator[None]:
    """While the body runs (process-wide): NumPy's BLAS held at one thread, and ``blas.product`` cutting
    large GEMMs into row parts run side by side on the pool. Restores the BLAS's threads after."""
    from .blas import rule

    if not rule().known:  # another BLAS: products run as it is set
        yield
        return
    with _hold():
        yield


def pooling() -> bool:
    """Whether products are being cut over the pool now (inside ``pooled``, BLAS not lent back)."""
    from .blas import rule

    return rule().known and _hold().held


@contextmanager
def own_threads() -> Iterator[None]:
    """Inside ``pooled``, while the body runs: NumPy's BLAS on the threads it had before the hold, its products
    not cut over the pool (elsewhere nothing changes). For a loop of small products with only serial work between
    them (a recurrent layer's time steps): OpenBLAS's workers spin from one product to the next instead of
    sleeping, where waking a sleeping pool thread for each product cost more than its half of the product saved.
    Thread counts do not change a product's bits (``blas``)."""
    with _hold().lent():
        yield


def row_parts(rows: int, macs: int, unit: int) -> list[tuple[int, int]]:
    """Row ranges of a GEMM of ``rows`` rows and ``macs`` multiply-adds: inside ``pooled``, one per pool
    thread at most, each starting at a multiple of ``unit`` (2 GEMM_UNROLL_M) and holding at least
    ``MIN_PART_MACS``; else the whole."""
    count = max(1, min(_the_pool().threads, macs // MIN_PART_MACS, rows // unit)) if _hold().held else 1
    if count == 1:
        return [(0, rows)]
    edges = [0, *((rows * i // count) // unit * unit for i in range(1, count)), rows]
    return list(zip(edges[:-1], edges[1:]))


def run(jobs: Sequence[Job]) -> None:
    """Run ``jobs`` (BLAS calls writing disjoint outputs): inside ``pooled``, in contiguous groups side
    by side, as many as the pool has threads and the BLAS limit before the hold allows; else in order."""
    hold = _hold()
    groups = min(_the_pool().threads, max(1, hold.saved), len(jobs)) if hold.held and len(jobs) > 1 else 1
    if groups == 1:
        _run_all(jobs)
        return
    edges = [len(jobs) * i // groups for i in range(groups + 1)]
    _the_pool().run([jobs[a:b] for a, b in zip(edges[:-1], edges[1:])])
