"""Compiling one kernel body twice: threaded for large batches, serial for small ones."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

from numba import njit
from numba.core.registry import CPUDispatcher

from . import threads

threads.apply_policy()  # before any kernel can start a thread pool

JIT_OPTIONS = {"error_model": "numpy", "cache": True}


def parallel_and_serial(func):
    """(threaded, serial) Numba dispatchers of ``func`` (``prange`` runs serially in the second).

    The serial one compiles a copy of ``func`` under another qualified name: Numba's on-disk
    cache is keyed by name and line, not by the ``parallel`` flag, so the two would collide.
    The serial one releases the GIL, so Python threads can run it side by side.
    """
    serial = types.FunctionType(func.__code__, func.__globals__, func.__name__ + "_serial", func.__defaults__, func.__closure__)
    serial.__qualname__ = func.__qualname__ + "_serial"
    serial.__doc__ = func.__doc__
    return njit(parallel=True, **JIT_OPTIONS)(func), njit(nogil=True, **JIT_OPTIONS)(serial)


def dispatchers(package: str = "xbarsim") -> Iterator[tuple[str, CPUDispatcher]]:
    """(module.name, dispatcher) of every Numba kernel in the imported modules of ``package``."""
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == package or module_name.startswith(package + ".")):
            continue
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and getattr(value.py_func, "__module__", None) == module_name:
                yield f"{module_name}.{value.py_func.__qualname__}", value


def cache_stats(package: str = "xbarsim") -> dict[str, int]:
    """Signatures of the kernels of ``package`` compiled in this process, and loaded from Numba's
    on-disk cache: {"compiled": n, "loaded": n}."""
    compiled = loaded = 0
    for _, dispatcher in dispatchers(package):
        compiled += sum(dispatcher.stats.cache_misses.values())
        loaded += sum(dispatcher.stats.cache_hits.values())
    return {"compiled": compiled, "loaded": loaded}
