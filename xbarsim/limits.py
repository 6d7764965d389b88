"""Upper bounds on what input may ask for: seeds, and the work and memory a command or a sweep takes.

One rule each, used by the command line, configs, sweep specs and the Python API alike, so that a value
is refused (naming the field) before any work starts or any file exists, never halfway through.
"""

from __future__ import annotations

import numbers
from typing import Any

from .errors import XbarsimError, shown

MAX_SEED = 2**63 - 1
"""Seeds are 0 .. 2^63 - 1: sweep stores keep them as int64, chip files as HDF5 integers."""
MAX_EPOCHS = 10_000
"""Training epochs (train, denoise, a spec's train recipe): 10,000 LeNet-5 epochs on digits are ~14 h."""
MAX_REPEATS = 10_000
"""Monte-Carlo repeats (robustness --repeats, a spec's repeats, demo --chips)."""
MAX_SAMPLES = 10_000_000
"""Samples a command takes from a data set (calibrate and cost --samples, a spec's test_samples)."""
MAX_BATCH = 65_536
"""Samples per forward or per training step."""
MAX_DRIFT_S = 1e12
"""Seconds after programming a chip may be drifted to (about 31,700 years; the device models are fitted
over seconds to years, and far beyond this float32 conductances underflow to zero)."""
MAX_NESTING = 64
"""Levels of nesting in a config, spec, JSON argument or checkpoint field (a chip config needs 4)."""
DEFAULT_MAX_WORK = 10**8
"""Network evaluations (one sample through the network) a sweep or a robustness curve may ask for unless the
user raises the limit (``--max-work``): hours of LeNet-5 on a 2-core machine. The shipped example sweeps
ask for ~1.7e5, a paper's midpoint curve on CIFAR-10's test split (17 levels x 10 repeats) for 1.7e6."""


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int, if it is an integer in 0 .. ``MAX_SEED``; else XbarsimError naming ``what``."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise XbarsimError(f"{what} must be an integer from 0 to 2**63 - 1, got {shown(seed)}")
    return int(seed)


def check_drift_time(t_s: Any, what: str = "drift time") -> float:
    """``t_s`` as a float, if it is a number of seconds in 0 .. ``MAX_DRIFT_S``; else XbarsimError naming ``what``."""
    ok = isinstance(t_s, numbers.Real) and not isinstance(t_s, bool) and 0 <= t_s <= MAX_DRIFT_S
    if not ok:
        raise XbarsimError(f"{what} must be from 0 to {MAX_DRIFT_S:g} s (about 31,700 years), got {shown(t_s)}")
    return float(t_s)


def check_work(evaluations: int, limit: int, what: str, parts: str) -> None:
    """Refuse ``what`` when it asks for more than ``limit`` network evaluations (one sample through the
    network; a training step counts 3 per sample, forward and backward); ``parts`` says how they add up."""
    if evaluations > limit:
        raise XbarsimError(f"{what} asks for {evaluations:,} network evaluations ({parts}), over the limit of {limit:,}: "
                           f"if you mean it, raise the limit (--max-work {evaluations})")
