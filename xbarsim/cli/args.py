"""Argument types and shared option groups of the command line (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np

from ..limits import MAX_BATCH, MAX_DRIFT_S, MAX_EPOCHS, MAX_REPEATS, MAX_SAMPLES, MAX_SEED


def bounded(kind: type, low: float | None = None, high: float | None = None, *, above: bool = False,
            high_text: str | None = None) -> Callable[[str], float]:  # fmt: skip
    """An argparse ``type=`` for an int or a finite float within [low, high] (``above``: > low instead of >=);
    ``high_text`` shows the upper bound in messages."""
    what = "an integer" if kind is int else "a number"
    shown_high = high_text or high
    if low is not None and high is not None and not above:
        what += f" from {low} to {shown_high}"
    else:
        bounds = ((">" if above else ">=", low), ("<=", shown_high))
        what += " " + " and ".join(f"{symbol} {bound}" for symbol, bound in bounds if bound is not None)

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        low_ok = low is None or (value > low if above else value >= low)
        if not (math.isfinite(value) and low_ok and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


def preset_name(text: str) -> str:
    """An argparse ``type=`` for a chip preset's name; any other name gets the list of presets."""
    from ..config import PRESETS

    if text not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {text[:40]!r}; choose from {', '.join(sorted(PRESETS))}")
    return text


POSITIVE_INT = bounded(int, 1)
NON_NEGATIVE_INT = bounded(int, 0)
SEED = bounded(int, 0, MAX_SEED, high_text="2**63 - 1")
EPOCHS = bounded(int, 1, MAX_EPOCHS)
REPEATS = bounded(int, 1, MAX_REPEATS)
SAMPLES = bounded(int, 1, MAX_SAMPLES)
BATCH = bounded(int, 1, MAX_BATCH)
WORK = bounded(int, 1)
POSITIVE = bounded(float, 0, above=True)
NON_NEGATIVE = bounded(float, 0)
FRACTION = bounded(float, 0, 1)


def json_object(text: str) -> dict:
    """An argparse ``type=`` for a JSON object (``--model-args``): no NaN or infinities, nesting bounded."""
    from ..configfile import ConfigError, parse_json

    example = '{"num_classes": 10}'
    try:
        value = parse_json(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; give an object, e.g. '{example}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, e.g. '{example}', got {text[:60]!r}")
    return value


def load_chip_config(spec: str):
    """A preset name or a chip YAML/JSON file as a ``ChipConfig`` (imported only when a command needs it)."""
    from ..config import chip_config

    return chip_config(spec)


def json_arg(value: dict | None) -> dict:
    """``--model-args`` as parsed by ``json_object``, or {} when not given."""
    return dict(value or {})


def parse_duration(text: str) -> float:
    """Seconds in '3600', '90s', '15m', '1h', '1d', '2w' or '10y' (365.25 days)."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0, "y": 365.25 * 86400.0}
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 3600, 1h, 1d, 1y)") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a duration must be finite and >= 0, got {text!r}")
    if value > MAX_DRIFT_S:
        raise argparse.ArgumentTypeError(f"a duration must be at most {MAX_DRIFT_S:g} s (about 31,700 years), got {text!r}")
    return value



MIN_SIGMAS, MAX_SIGMAS = 5, 1000


def parse_sigmas(text: str) -> list[float]:
    """'logspace(-2, 2, 17)' (decades, points) or a comma-separated list: ``MIN_SIGMAS`` (the midpoint fit
    needs them) to ``MAX_SIGMAS`` finite values > 0 (the curve is fitted and drawn in log10(sigma))."""
    text = text.strip()
    usage = (f"use 'logspace(-2, 2, 17)' or '0.01,0.1,0.3,1,3' ({MIN_SIGMAS} to {MAX_SIGMAS} finite values > 0), "
             f"got {text[:60]!r}")  # fmt: skip
    try:
        if text.startswith("logspace(") and text.endswith(")"):
            low, high, n = text[9:-1].split(",")
            if not MIN_SIGMAS <= int(n) <= MAX_SIGMAS or max(abs(float(low)), abs(float(high))) > 300:
                raise ValueError
            values = list(np.logspace(float(low), float(high), int(n)))
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(usage) from None
    if not MIN_SIGMAS <= len(values) <= MAX_SIGMAS or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(usage)
    return values


def user_model(name: str | None, kwargs: dict | None):
    """The network ``--model``/``--model-args`` name, built; None without ``--model``. A zoo name is
    built from its description, as a file's network is (checked on the meta device first); a
    ``package.module:Class`` is imported, from the working folder first, as ``python -m`` finds it."""
    import os

    from ..errors import XbarsimError
    from ..models import netspec, usercode

    if name is None:
        if kwargs:
            raise XbarsimError("--model-args needs --model (the network the arguments build)")
        return None
    try:
        if usercode.is_class_path(name):
            return usercode.build(name, kwargs, folder=os.getcwd())
        return netspec.build({"zoo": name, "kwargs": dict(kwargs or {})})
    except XbarsimError as exc:
        raise XbarsimError(f"--model {name}: {exc}") from None


def model_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument("--model", help=f"{purpose}: a zoo name or package.module:Class (a module in the working "
                        "folder is found, as with python -m)")  # fmt: skip
    parser.add_argument("--model-args", type=json_object, help="JSON object of the model's constructor arguments")


def device_arguments(parser: argparse.ArgumentParser, what: str, backend: bool = True) -> None:
    """``--device`` (and ``--backend``): where ``what`` runs, and with which tile backend."""
    parser.add_argument("--device", default="cpu", help=f"where {what} runs: cpu, cuda, cuda:1, ... (a GPU runs the torch backend)")
    if backend:
        parser.add_argument("--backend", choices=["auto", "numba", "torch"],
                            help="the chip's tile backend: auto (the Numba kernels on the CPU, torch elsewhere), numba (CPU only), "
                                 "or torch (any device, the CPU included); default: the chip config's runtime.backend")  # fmt: skip


def device_of(name: str):
    """The torch device ``--device`` names, checked (XbarsimError for a device this machine does not have)."""
    from ..crossbar_torch.backend import torch_device

    return torch_device(name)
