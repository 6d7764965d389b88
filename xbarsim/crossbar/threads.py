"""How xbarsim's Numba kernels share the CPU with BLAS and with torch (the thread policy).

A tile MVM alternates Numba passes (DAC, noise + ADC) with BLAS GEMMs, usually inside a torch
script. Numba's default OpenMP layer (GNU libgomp) keeps its threads spinning after every parallel
region; OpenBLAS's workers spin after every GEMM; on a small machine they starve each other.
``OMP_WAIT_POLICY=passive`` cures that only if it is set before the OpenMP runtime loads (so it
depends on the import order and on the user's environment) and it makes torch's own OpenMP
threads passive too, which slows torch down.

Measured (a quiet 16-core machine pinned to 2 cores with ``taskset``, a DAC pass + 512x512 GEMM +
noise/ADC pass of the same structure as a tile MVM, ratio = clean GEMM time / pipeline time, two
runs each, ``import torch`` first / xbarsim first):

- OpenMP, spinning (the default):  0.06 / 0.06 at batch 256, 0.014 / 0.014 at batch 32, 0.54-0.58
  at batch 1; torch's LSTM (2x256, batch 32, 50 steps) 8.9-13.4 ms;
- OpenMP, ``OMP_WAIT_POLICY=passive``: 0.20-0.21 / 0.21-0.24, 0.28-0.29, 0.47; torch's LSTM
  12.8-15.9 ms (slowed);
- workqueue: 0.20 / 0.20, 0.25-0.26, 0.20; torch's LSTM 10.0-14.1 ms;
- serial kernels (BLAS still threaded): 0.20-0.21 / 0.20, 0.29-0.30, 0.65-0.68; torch's LSTM 8.7-10.3 ms;
- torch alone in a clean process: LSTM 8.4-9.1 ms.

On all 16 cores (torch first): OpenMP spinning 0.011 / 0.003 (batch 256 / 32), passive 0.28 /
0.21 but torch's LSTM 3.7 -> 13.8 ms, workqueue 0.14 / 0.06 with torch unharmed (4.1 ms), serial
0.09 / 0.16 / 0.63 (batch 1). With the real 512x512 tile (8-bit DAC/ADC + additive read noise) on
the shared 2-core development machine (load average about 4, so only the large effects show):
OpenMP spinning 0.016-0.024x at batch 256, passive OpenMP 0.18-0.25x, workqueue 0.13-0.36x, in
either import order.

The policy, from these numbers:

- Numba's ``workqueue`` layer: its threads sleep between regions, so nothing spins against BLAS,
  torch's OpenMP runtime is left alone (torch keeps its speed), and it is the same whichever of
  torch and xbarsim is imported first, whatever ``OMP_WAIT_POLICY`` says. It is set when the
  first kernel module is imported, unless the user chose a layer (``NUMBA_THREADING_LAYER``, e.g.
  ``tbb`` after ``pip install tbb``) or a Numba parallel region already ran in the process.
- Serial kernels when a call has little work (``PARALLEL_MIN_OUTPUTS``): waking threads costs more
  than it saves, and a serial pass leaves both cores to BLAS.
- Parallel kernels only from the main thread: the workqueue layer aborts the process if two
  threads enter it at once, so calls from other threads run the serial twins (same results:
  the kernels are deterministic across thread counts).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numba

PREFERRED_LAYER = "workqueue"
PARALLEL_MIN_OUTPUTS = 1 << 17  # rows x outputs of one call below which kernels run serially
NETWORK_PARALLEL_FACTOR = 16  # inside a network's forward (``network_kernels``) a call needs this many times more

_network_sections = 0
_network_lock = threading.Lock()


def apply_policy() -> str:
    """Choose Numba's threading layer for this process; returns the layer Numba will use.

    Leaves a layer the user named in ``NUMBA_THREADING_LAYER`` alone, and one already running."""
    try:
        return numba.threading_layer()  # a parallel region already ran: too late to choose
    except ValueError:
        pass
    if numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = PREFERRED_LAYER
    return numba.config.THREADING_LAYER


@contextmanager
def network_kernels() -> Iterator[None]:
    """While the body runs (process-wide): a kernel call runs threaded only from ``NETWORK_PARALLEL_FACTOR``
    times ``PARALLEL_MIN_OUTPUTS`` outputs on. In a network's forward, torch's OpenMP worker spins after each
    digital operation, and a Numba worker woken then waits for a core: a threaded pass of a few hundred
    thousand outputs lost more than it saved (module doc)."""
    global _network_sections
    with _network_lock:
        _network_sections += 1
    try:
        yield
    finally:
        with _network_lock:
            _network_sections -= 1


def use_parallel(outputs: int) -> bool:
    """Whether a kernel call producing ``outputs`` values (rows x columns) should run threaded."""
    threshold = PARALLEL_MIN_OUTPUTS * (NETWORK_PARALLEL_FACTOR if _network_sections else 1)
    return outputs >= threshold and threading.current_thread() is threading.main_thread()
