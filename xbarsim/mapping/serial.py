"""Serial sections: torch's and BLAS's threads held at one while a loop of small products runs.

A recurrent layer's time steps alternate small tile products (NumPy's OpenBLAS) with small gate
operations (torch's OpenMP runtime), a few hundred microseconds each. Two-thread calls there lose
more than they gain: OpenBLAS's workers keep spinning for about 0.1 s after every product, torch's
OpenMP workers spin after every parallel operation (an addition of 32 x 1024 gate values already
runs in parallel), and each runtime's second thread then waits for a core the other one holds. On
the 2-core development machine (load average 8), 64 x 256 x 1024 products in a loop took a median
0.6 ms with one BLAS thread against 29-44 ms with two, and the 2 x 256 LSTM at batch 32 ran its 50
steps in 2.5-4 s with torch held at one thread against 10 s with the defaults. On a quiet machine
(a pooled forward, below) the steps lend BLAS its own threads back (``steps_section``): with torch held
and the steps' passes serial, nothing else needs the second core between the products.

A whole network's forward (``network_section``, around ``AnalogModel.forward``) holds them at one
thread too when the machine is busy: its 1-minute load average is above the CPU count plus
``BUSY_LOAD_MARGIN`` (as OpenMP's dynamic mode reads it). A multi-threaded BLAS call or torch
operation is then as slow as its thread that waits longest for a core, and a spinning worker takes
the core a Numba thread needed. On the 2-core development machine, VGG-11 at batch 64 on the
``pcm`` chip, alternating paired forwards (min / median ms): 1092 / 1356 with the default threads
against 376 / 621 held (load average 3-4), 1187 / 1536 against 495 / 905 (load 5 and more);
ResNet-18 4298 / 6232 against 2046 / 3349 (load 4.5). On a quiet machine the forward keeps its
threads: there (load 0.3-0.8) VGG-11 ran alike either way (349 / 387 against 341 / 370), ResNet-18
faster with them (1190 / 1569 against 1455 / 1555).
On a quiet machine NumPy's BLAS is held at one, the tiles' large GEMMs cut over xbarsim's own pool
(``crossbar/read/blasthreads.py``), whose idle threads sleep: a spinning OpenBLAS worker otherwise stalls
every torch operation after a product. Each part of a read's batch runs its noise/ADC pass after its
GEMMs on the same pool thread (``read/readout.py``). torch is held at one thread there too ("auto";
"all" leaves it): its OpenMP worker spins after each parallel operation and took the core the pool's
second part needed. Numba passes run threaded there
only from ``threads.NETWORK_PARALLEL_FACTOR`` times the usual size (``threads.network_kernels``). Same machine, quiet, paired
forwards in one process (min / median ms): ViT (4 x 128, batch 64) 140 / 150 against 370 / 510 with
threaded OpenBLAS, VGG-11 206 / 215 against 200 / 244, ResNet-18 681 / 781 against 755 / 816, the LSTM
(batch 32) 77 / 82 against 84 / 86.
``NETWORK_THREADS`` overrides the choice ("one" or "all").

Thread counts never change a result: the tiles' BLAS calls stay inside OpenBLAS's rule
(``crossbar/read/blas.py``), the Numba kernels are deterministic across thread counts, and a
network's forward holds torch's threads only where its GEMMs run in MKL's strict mode
(``torch_gemms_ignore_threads``; docs/determinism.md). All tested.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..crossbar import threads
from ..crossbar.read import blasthreads

_blas = blasthreads.blas_libraries  # the BLAS libraries of this process (threadpoolctl)


@contextmanager
def serial_section() -> Iterator[None]:
    """Run the body with one torch intra-op thread and one BLAS thread; restores both after.

    The settings are process-wide: another Python thread running torch meanwhile runs serially too."""
    with _blas().limit(limits=1), torch_held():
        yield


@contextmanager
def steps_section() -> Iterator[None]:
    """A recurrent layer's time steps: ``serial_section``, except inside a pooled forward (a quiet machine,
    ``network_section``), where torch is held at one thread and NumPy's BLAS gets its own threads back for the
    steps' products (``blasthreads.own_threads``): with nothing else threaded between them, OpenBLAS's workers
    stay awake from one step to the next."""
    if not blasthreads.pooling():
        with serial_section():
            yield
        return
    with blasthreads.own_threads(), torch_held():
        yield


@contextmanager
def torch_held() -> Iterator[None]:
    """Run the body with one torch intra-op thread; restores torch's thread count after (process-wide)."""
    torch_threads = torch.get_num_threads()
    if torch_threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch_threads != 1:
            torch.set_num_threads(torch_threads)


BUSY_LOAD_MARGIN = 1.0  # load average above the CPU count at which a network's forward holds one thread
NETWORK_THREADS = "auto"  # a network's forward: "auto" (one thread when busy), "one", or "all"


def machine_is_busy() -> bool:
    """Whether the 1-minute load average exceeds the CPU count by more than ``BUSY_LOAD_MARGIN``
    (False where the system has no load average)."""
    if not hasattr(os, "getloadavg"):
        return False
    return os.getloadavg()[0] > (os.cpu_count() or 1) + BUSY_LOAD_MARGIN


_MKL_CBWR_STRICT = 0x10000  # MKL's MKL_CBWR_STRICT flag
_MKL_CBWR_ALL = -1


@functools.cache
def torch_gemms_ignore_threads() -> bool:
    """Whether torch's GEMMs run in MKL's strict reproducibility mode (the same bits on any thread
    count; ``xbarsim.mapping`` asks for it before MKL's first call). Read from the MKL inside torch;
    False where it cannot be read (another BLAS, or MKL started without it)."""
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        mode = ctypes.CDLL(str(library)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return False
    mode.restype, mode.argtypes = ctypes.c_int, [ctypes.c_int]
    return bool(mode(_MKL_CBWR_ALL) & _MKL_CBWR_STRICT) and mode(_MKL_CBWR_ALL) > 0


@contextmanager
def blas_section() -> Iterator[None]:
    """Run the body with one BLAS thread (NumPy's, which the tiles use); restores it after."""
    with _blas().limit(limits=1):
        yield


@contextmanager
def _pooled(hold_torch: bool) -> Iterator[None]:
    """A forward on a quiet machine: NumPy's BLAS held, the tiles' products cut over xbarsim's pool
    (``blasthreads.pooled``), only large Numba passes threaded (``threads.network_kernels``), and torch at
    one thread when ``hold_torch``."""
    with blasthreads.pooled(), threads.network_kernels(), (torch_held() if hold_torch else contextlib.nullcontext()):
        yield


def network_section():
    """The context a whole network's forward runs in: ``serial_section()`` when ``NETWORK_THREADS``
    is "one", or "auto" on a busy machine (``machine_is_busy``); otherwise NumPy's BLAS held at one and
    the tiles' products cut over xbarsim's pool (``blasthreads.pooled``), with torch at one thread for
    "auto" and its threads as they are for "all". torch's threads are held only where its GEMMs ignore
    them (``torch_gemms_ignore_threads``), so that holding them never changes a digital layer's bits;
    else only BLAS's are."""
    if NETWORK_THREADS not in ("auto", "one", "all"):
        raise ValueError(f"NETWORK_THREADS must be 'auto', 'one' or 'all', got {NETWORK_THREADS!r}")
    torch_may_hold = torch_gemms_ignore_threads()
    if NETWORK_THREADS == "one" or (NETWORK_THREADS == "auto" and machine_is_busy()):
        return serial_section() if torch_may_hold else blas_section()
    return _pooled(NETWORK_THREADS == "auto" and torch_may_hold)
