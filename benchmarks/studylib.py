"""What the robustness studies share: reproducible set-up, seeded training, midpoint cells,
markdown tables, progress and run time. Import it from a study script run as
``python benchmarks/<study>.py`` (the script's folder is on ``sys.path``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from xbarsim import ChipConfig, map_model
from xbarsim.models.data import DataSplit
from xbarsim.models.training import TrainConfig, accuracy, train
from xbarsim.sweeps.metrics import NoiseCurve, NoMidpointError, noise_curve
from xbarsim.models.quant import QATConfig
from xbarsim.sweeps.noise_kinds import ActivationNoise, NoiseKind
from xbarsim.sweeps.plots import save_figure

RESULTS = Path(__file__).resolve().parent / "results"
DRIFT = [("1 s", 1.0), ("1 min", 60.0), ("1 hour", 3600.0), ("1 day", 86400.0), ("1 month", 30 * 86400.0),
         ("1 year", 365.25 * 86400.0), ("10 years", 3652.5 * 86400.0)]  # fmt: skip


def study_parser(description: str, plot_name: str) -> argparse.ArgumentParser:
    """The options every study has: --quick, --seed, --threads, --plot."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a CI-sized run: fewer epochs, levels and repeats")
    parser.add_argument("--seed", type=int, default=0, help="one seed for data order, initialization and noise (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; torch sums in a thread-dependent order, so compare tables at one count)")
    parser.add_argument("--plot", default=str(RESULTS / plot_name), help=f"figure to write (default results/{plot_name})")
    return parser


def add_chips_option(parser: argparse.ArgumentParser, full: int, quick: int, per: str = "point") -> None:
    """``--chips N``: chips (programming seeds) per point, ``full`` by default, ``quick`` with --quick."""
    parser.add_argument("--chips", type=int, help=f"chips per {per} (default {full}; {quick} with --quick)")
    parser.set_defaults(chip_defaults=(full, quick))


def chip_count(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The chips per point that ``add_chips_option``'s ``--chips`` asks for (at least 1)."""
    full, quick = args.chip_defaults
    chips = args.chips if args.chips is not None else (quick if args.quick else full)
    if chips < 1:
        parser.error("--chips must be at least 1")
    return chips


def reproducible(seed: int, threads: int) -> None:
    """Deterministic torch kernels, a fixed thread count, and the global seeds."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)


def begin(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, Clock, int]:
    """Parses a chip study's options and makes its run reproducible: (args, its clock, chips per point)."""
    args = parser.parse_args(argv)
    reproducible(args.seed, args.threads)
    return args, Clock(), chip_count(parser, args)


class Clock:
    """Wall time since the study started, for progress lines and the final run time."""

    def __init__(self):
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def log(self, message: str) -> None:
        tqdm.write(f"[{self.seconds():6.0f} s] {message}", file=sys.stderr)


def progress(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr)


def trained(build: Callable[[], torch.nn.Module], split: DataSplit, cfg: TrainConfig, teacher: torch.nn.Module | None = None):
    """A network from ``build`` (initialized from ``cfg.seed``) trained on ``split``."""
    torch.manual_seed(cfg.seed)
    model = build()
    train(model, split, cfg, teacher=teacher, progress=False)
    return model


def with_options(cfg: TrainConfig, **options) -> TrainConfig:
    return replace(cfg, **options)


def curve_under(model: torch.nn.Module, split: DataSplit, levels: Sequence[float], repeats: int, noise: NoiseKind,
                seed: int) -> NoiseCurve:  # fmt: skip
    return noise_curve(model, split.x_test, split.y_test, levels, repeats, noise, seed)


def matched_training_curve(build, split: DataSplit, levels: Sequence[float], repeats: int, base: TrainConfig,
                           option: str, noise: NoiseKind, seed: int) -> NoiseCurve:  # fmt: skip
    """The seed papers' protocol for noisy training: one network per level, trained with
    ``option=level`` and tested under that level of ``noise`` only."""
    rows = [curve_under(trained(build, split, with_options(base, **{option: float(level)})), split, [level], repeats, noise, seed).accuracies[0]
            for level in levels]  # fmt: skip
    return NoiseCurve(np.asarray(levels, float), np.stack(rows))


def hardening_variants(build, split: DataSplit, sigmas: Sequence[float], repeats: int, base: TrainConfig, seed: int,
                       qat_scales: Sequence[str]) -> dict[str, Callable[[], NoiseCurve]]:  # fmt: skip
    """The hardening paper's trainings, each a function giving its curve under additive
    activation noise after every module: plain; noisy training (one network per sigma, the
    papers' protocol); 8-bit symmetric QAT with each activation scale ("dynamic", "const:4")."""
    noise = ActivationNoise()
    variants = {
        "plain": lambda: curve_under(trained(build, split, base), split, sigmas, repeats, noise, seed),
        "noisy training": lambda: matched_training_curve(build, split, sigmas, repeats, base, "noise_sigma", noise, seed),
    }
    for scale in qat_scales:
        label = "QAT 8-bit, dynamic scale" if scale == "dynamic" else f"QAT 8-bit, constant scale ({scale.partition(':')[2]})"
        cfg = with_options(base, qat=QATConfig(8, True, scale))
        variants[label] = lambda cfg=cfg: curve_under(trained(build, split, cfg), split, sigmas, repeats, noise, seed)
    return variants


def drift_curve(model: torch.nn.Module, cfg: ChipConfig, times: list[float], chips: int, split: DataSplit) -> NoiseCurve:
    """Accuracy at each time after programming (seconds), on ``chips`` chips (programming seeds
    0 .. chips-1), each read at the times in order."""
    chip = map_model(model, cfg)
    accuracies = np.zeros((len(times), chips))
    for c in range(chips):
        chip.program(c)
        for i, t in enumerate(times):
            chip.drift(t)
            accuracies[i, c] = accuracy(chip, split.x_test, split.y_test)
    return NoiseCurve(np.asarray(times, float), accuracies)


def midpoint_cell(curve: NoiseCurve) -> str:
    """``sigma_mid ± error``, or why there is none."""
    try:
        fit = curve.midpoint()
    except NoMidpointError as exc:
        return f"none ({exc})"
    return f"{fit.sigma_mid:.3f} ± {fit.sigma_mid_err:.3f}"


def midpoint_ratio(curve: NoiseCurve, reference: NoiseCurve) -> str:
    """``curve``'s midpoint over ``reference``'s, with the propagated error, or '-'."""
    try:
        a, b = curve.midpoint(), reference.midpoint()
    except NoMidpointError:
        return "-"
    ratio = a.sigma_mid / b.sigma_mid
    return f"{ratio:.2f} ± {ratio * np.hypot(a.sigma_mid_err / a.sigma_mid, b.sigma_mid_err / b.sigma_mid):.2f}"


def mean_std_cell(values: Sequence[float]) -> str:
    """Accuracies as ``mean ± std %`` (std over the values, ddof 1)."""
    values = np.asarray(values, float)
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{100 * values.mean():.1f} ± {100 * std:.1f}%"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_panels(panels: dict[str, dict[str, NoiseCurve]], path: str | Path, xlabel: str | dict[str, str], title: str = "",
                fit: bool = True, columns: int = 3, ylabel: str = "test accuracy") -> Path:  # fmt: skip
    """One panel of curves (mean ± std over repeats; with ``fit``, the logistic fit where there
    is one) per entry, ``columns`` to a row; the x axis is logarithmic where a panel's values
    span more than a factor 50; ``xlabel`` names the noise (one for all, or one per panel); an
    accuracy axis runs from 0 to 1, another (``ylabel``) fits its values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.8 * rows), squeeze=False)
    for ax, (panel, curves) in zip(axes.flat, panels.items()):
        for label, curve in curves.items():
            try:
                logistic = curve.midpoint() if fit else None
            except NoMidpointError:
                logistic = None
            text = label if logistic is None else f"{label} (mid {logistic.sigma_mid:.3g})"
            points = ax.errorbar(curve.sigmas, curve.mean, yerr=curve.std, fmt="o-" if not fit else "o", ms=3, capsize=2, label=text)
            if logistic is not None:
                fine = np.logspace(np.log10(curve.sigmas.min()), np.log10(curve.sigmas.max()), 200)
                ax.plot(fine, logistic.curve(fine), color=points[0].get_color(), lw=1)
        values = np.concatenate([curve.sigmas for curve in curves.values()])
        if values.min() > 0 and values.max() / values.min() > 50:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel if isinstance(xlabel, str) else xlabel[panel])
        ax.set_ylabel(ylabel)
        if ylabel == "test accuracy":
            ax.set_ylim(0, 1.02)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        ax.set_title(panel, fontsize=10)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path, dpi=110)
