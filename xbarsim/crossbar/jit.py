"""Compiling one kernel body twice: threaded for large batches, serial for small ones."""

from __future__ import annotations

import types

from numba import njit

JIT_OPTIONS = {"error_model": "numpy", "cache": True}


def parallel_and_serial(func):
    """(threaded, serial) Numba dispatchers of ``func`` (``prange`` runs serially in the second).

    The serial one compiles a copy of ``func`` under another qualified name: Numba's on-disk
    cache is keyed by name and line, not by the ``parallel`` flag, so the two would collide.
    """
    serial = types.FunctionType(func.__code__, func.__globals__, func.__name__ + "_serial", func.__defaults__, func.__closure__)
    serial.__qualname__ = func.__qualname__ + "_serial"
    serial.__doc__ = func.__doc__
    return njit(parallel=True, **JIT_OPTIONS)(func), njit(**JIT_OPTIONS)(serial)
