"""Timing a function against a baseline in alternating rounds, so machine noise hits both alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def _best_of(func: Callable[[], object], calls: int) -> float:
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def paired_timing(work: Callable[[], object], baseline: Callable[[], object], min_seconds: float = 0.3,
                  calls_per_round: int = 3, max_rounds: int = 100) -> tuple[float, float]:  # fmt: skip
    """Seconds per call of (work, baseline): the median over rounds of each round's best call.

    A round runs the baseline ``calls_per_round`` times, then the work as often, so both are
    measured warm and close in time. Rounds repeat until ``min_seconds`` of work has run
    (at least 3 rounds, at most ``max_rounds``).
    """
    work()
    baseline()
    t_work, t_base = [], []
    spent = 0.0
    while len(t_work) < 3 or (spent < min_seconds and len(t_work) < max_rounds):
        t_base.append(_best_of(baseline, calls_per_round))
        t_work.append(_best_of(work, calls_per_round))
        spent += t_work[-1] * calls_per_round
    return float(np.median(t_work)), float(np.median(t_base))


def steady_seconds(func: Callable[[], object], min_seconds: float, min_calls: int = 3, max_calls: int = 50) -> float:
    """Median seconds per call of ``func`` once warm (call it once before), over at least
    ``min_calls`` calls and ``min_seconds`` of work (at most ``max_calls`` calls)."""
    times: list[float] = []
    while len(times) < min_calls or (sum(times) < min_seconds and len(times) < max_calls):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
