"""Global drift compensation in the chip's periphery (docs/physics.md §7): right after programming,
a fixed probe is read through the array and its mean |output| kept as the reference; after
drift the probe is read again and the outputs are scaled digitally by reference / now (one
factor per array, or one per output column)."""

from __future__ import annotations

import numpy as np

from . import rng

PROBE_VECTORS = 32


def probe_inputs(seed: int, n_in: int) -> np.ndarray:
    """(PROBE_VECTORS, n_in) float32, uniform in [-1, 1): the same probe for the array's life."""
    n = PROBE_VECTORS * n_in
    u = rng.uniforms(rng.stream_key(seed, rng.PURPOSE_PROBE_INPUT), (n + 1) // 2).ravel()[:n]
    return (2.0 * u - 1.0).astype(np.float32).reshape(PROBE_VECTORS, n_in)


def probe_seed(seed: int, t_s: float) -> int:
    """The seed of the read noise of the probe read at t_s (so a probe read is reproducible and
    does not use the inference reads' noise)."""
    return int(rng.stream_key(seed, rng.PURPOSE_PROBE, int(round(t_s))))


def response_level(outputs: np.ndarray, mode: str) -> np.ndarray:
    """mean |output| of a probe read: a scalar (global) or one per column (column)."""
    level = np.abs(outputs.astype(np.float64)).mean(axis=0 if mode == "column" else None)
    return np.asarray(level, np.float32)


def gain(reference: np.ndarray, level: np.ndarray) -> np.ndarray:
    """reference / level, 1 where the probe reads nothing."""
    safe = np.where(level > 0, level, 1.0)
    return np.where(level > 0, reference / safe, 1.0).astype(np.float32)
