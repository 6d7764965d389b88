"""Serial sections: torch's and BLAS's threads held at one while a loop of small products runs.

A recurrent layer's time steps alternate small tile products (NumPy's OpenBLAS) with small gate
operations (torch's OpenMP runtime), a few hundred microseconds each. Two-thread calls there lose
more than they gain: OpenBLAS's workers keep spinning for about 0.1 s after every product, torch's
OpenMP workers spin after every parallel operation (an addition of 32 x 1024 gate values already
runs in parallel), and each runtime's second thread then waits for a core the other one holds. On
the 2-core development machine (load average 8), 64 x 256 x 1024 products in a loop took a median
0.6 ms with one BLAS thread against 29-44 ms with two, and the 2 x 256 LSTM at batch 32 ran its 50
steps in 2.5-4 s with torch held at one thread against 10 s with the defaults.

Thread counts never change a result: OpenBLAS splits a product over rows and columns, not over the
summed index, and the Numba kernels are deterministic across thread counts (tested).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import ThreadpoolController


@functools.cache
def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded in this process (found once: the search takes milliseconds)."""
    return ThreadpoolController().select(user_api="blas")


@contextmanager
def serial_section() -> Iterator[None]:
    """Run the body with one torch intra-op thread and one BLAS thread; restores both after.

    The settings are process-wide: another Python thread running torch meanwhile runs serially too."""
    torch_threads = torch.get_num_threads()
    with _blas().limit(limits=1):
        if torch_threads != 1:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch_threads != 1:
                torch.set_num_threads(torch_threads)
