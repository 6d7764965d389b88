"""What the robustness studies share: reproducible set-up, seeded training over several training
seeds, midpoints and their ratios as mean ± error over those seeds, markdown tables, the JSON
record with the environment, progress and run time. Import it from a study script run as
``python benchmarks/<study>.py`` (the script's folder is on ``sys.path``)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from xbarsim import ChipConfig, map_model
from xbarsim.models.data import DataSplit
from xbarsim.models.training import TrainConfig, accuracy, train
from xbarsim.sweeps.metrics import NoiseCurve, NoMidpointError, mean_and_error, noise_curve
from xbarsim.models.quant import QATConfig
from xbarsim.sweeps.noise_kinds import ActivationNoise, NoiseKind
from xbarsim.sweeps.plots import save_figure

RESULTS = Path(__file__).resolve().parent / "results"
DRIFT = [("1 s", 1.0), ("1 min", 60.0), ("1 hour", 3600.0), ("1 day", 86400.0), ("1 month", 30 * 86400.0),
         ("1 year", 365.25 * 86400.0), ("10 years", 3652.5 * 86400.0)]  # fmt: skip


def study_parser(description: str, plot_name: str) -> argparse.ArgumentParser:
    """The options every study has: --quick, --seed, --train-seeds, --threads, --plot, --json."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a CI-sized run: fewer epochs, levels, repeats and training seeds")
    parser.add_argument("--seed", type=int, default=0, help="the data split's and the test noise's seed, and the first training seed (default 0)")
    parser.add_argument("--train-seeds", type=int, help="networks trained per arm, with seeds --seed, --seed + 1, ... "
                        "(default 3; 2 with --quick): every comparison is reported as mean ± its error over them")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; torch sums in a thread-dependent order, so compare tables at one count)")
    parser.add_argument("--plot", default=str(RESULTS / plot_name), help=f"figure to write (default results/{plot_name})")
    json_name = Path(plot_name).with_suffix(".json").name
    parser.add_argument("--json", default=str(RESULTS / json_name), help=f"per-seed results and the environment (default results/{json_name})")
    return parser


def training_seeds(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[int]:
    """The training seeds ``--train-seeds`` asks for: --seed, --seed + 1, ..."""
    count = args.train_seeds if args.train_seeds is not None else (2 if args.quick else 3)
    if count < 1:
        parser.error("--train-seeds must be at least 1")
    return [args.seed + t for t in range(count)]


def environment() -> dict:
    """What made a table: versions, threads, the machine and its load (a study records it in its JSON
    and prints it under its tables)."""
    import numba

    cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    return {"xbarsim": _version("xbarsim"), "git": _git_commit(), "torch": torch.__version__, "numpy": np.__version__,
            "scipy": _version("scipy"), "numba": _version("numba"), "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(), "machine": platform.machine(),
            "cpu": cpu, "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()[0],
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}  # fmt: skip


def environment_line(env: dict, seconds: float) -> str:
    return (f"Environment: xbarsim {env['xbarsim']} (git {env['git']}), torch {env['torch']}, numpy {env['numpy']}, "
            f"{env['torch_threads']} torch thread(s), {env['numba_threads']} Numba thread(s); {env['cpu']} ({env['cpus']} CPUs, "
            f"{env['machine']}), load average {env['load_average_at_start']:.1f} at the start; {env['date']}; run time {seconds:.0f} s.")  # fmt: skip


def write_json(path: str | Path, study: str, args: argparse.Namespace, env: dict, seconds: float, results: dict) -> Path:
    """The study's record: its options, the environment, its run time and its per-seed results."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"study": study, "options": vars(args), "environment": {**env, "run_time_s": round(seconds, 1),
              "load_average_at_end": os.getloadavg()[0]}, "results": results}  # fmt: skip
    path.write_text(json.dumps(record, indent=1, default=_plain) + "\n")
    return path


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    """The checkout's commit, with "+changes" when files differ from it; "unknown" outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") if commit.returncode == 0 else "unknown"


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
    return NoiseCurve(np.asarray(levels, float), np.stack(rows), 1.0 / len(split.y_test))


def measured(model: torch.nn.Module, split: DataSplit, levels: Sequence[float], repeats: int, noise: NoiseKind,
             seed: int) -> tuple[NoiseCurve, float]:  # fmt: skip
    """``model``'s curve under ``noise`` and its float test accuracy."""
    return curve_under(model, split, levels, repeats, noise, seed), accuracy(model, split.x_test, split.y_test)


def hardening_variants(build, split: DataSplit, sigmas: Sequence[float], repeats: int, base: TrainConfig, seed: int,
                       qat_scales: Sequence[str]) -> dict[str, Callable[[], tuple[NoiseCurve, float | None]]]:  # fmt: skip
    """The hardening paper's trainings (from ``base``, whose seed is the training seed), each a
    function giving its curve under additive activation noise after every module (noise drawn from
    ``seed``) and its network's float accuracy: plain; noisy training (one network per sigma, the
    papers' protocol: no one float accuracy); 8-bit symmetric QAT with each activation scale
    ("dynamic", "const:4")."""
    noise = ActivationNoise()
    variants = {
        "plain": lambda: measured(trained(build, split, base), split, sigmas, repeats, noise, seed),
        "noisy training": lambda: (matched_training_curve(build, split, sigmas, repeats, base, "noise_sigma", noise, seed), None),
    }
    for scale in qat_scales:
        label = "QAT 8-bit, dynamic scale" if scale == "dynamic" else f"QAT 8-bit, constant scale ({scale.partition(':')[2]})"
        cfg = with_options(base, qat=QATConfig(8, True, scale))
        variants[label] = lambda cfg=cfg: measured(trained(build, split, cfg), split, sigmas, repeats, noise, seed)
    return variants


def hardening_study(builds: dict[str, Callable[[], torch.nn.Module]], split: DataSplit, sigmas: Sequence[float], repeats: int,
                    bases: list[TrainConfig], seed: int, qat_scales: Sequence[str], clock: "Clock", bar: tqdm):  # fmt: skip
    """``hardening_variants`` of every network, trained once per config in ``bases`` (one per
    training seed), compared with plain training (``compare``). Returns the results per network,
    the arms per network (for ``plot_panels``) and table rows: network, training, accuracy at the
    lowest sigma, then ``comparison_cells``."""
    results, panels, rows = {}, {}, []
    for name, build in builds.items():
        arms: dict[str, Arm] = {}
        for base in bases:
            for variant, run in hardening_variants(build, split, sigmas, repeats, base, seed, qat_scales).items():
                curve, clean = run()
                arms.setdefault(variant, Arm()).add(base.seed, curve, clean)
                clock.log(f"{name} {variant}, training seed {base.seed}: accuracy at sigma {sigmas[0]:g} {100 * curve.mean[0]:.1f}%, "
                          f"midpoint {summary_cell(summary(arms[variant].midpoints()[-1:]))}")  # fmt: skip
                bar.update()
        results[name] = compare(arms, "plain")
        panels[name] = arms
        for variant, arm in arms.items():
            low = results[name][variant]["accuracy_at_lowest_level"] = values_summary(arm.seeds, [c.mean[0] for c in arm.curves])
            rows.append([name, variant, summary_cell(low, 1, percent=True) + "%", *comparison_cells(results[name][variant])])
    return results, panels, rows


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
    return NoiseCurve(np.asarray(times, float), accuracies, 1.0 / len(split.y_test))


DROP = 0.05  # the accuracy drop from the float network at which the noise level is also read


@dataclass
class Arm:
    """One way of training, measured once per training seed: the noise curve and the float test
    accuracy of each seed's network (None where an arm has no one network: one per noise level)."""

    seeds: list[int] = field(default_factory=list)
    curves: list[NoiseCurve] = field(default_factory=list)
    clean: list[float | None] = field(default_factory=list)

    def add(self, seed: int, curve: NoiseCurve, clean: float | None = None) -> None:
        self.seeds.append(seed)
        self.curves.append(curve)
        self.clean.append(clean)

    def midpoints(self) -> list[dict]:
        """Per seed: the midpoint and its fit error, or why there is none (and the bracket, if any)."""
        out = []
        for seed, curve in zip(self.seeds, self.curves):
            try:
                fit = curve.midpoint()
                out.append({"seed": seed, "value": fit.sigma_mid, "fit_error": fit.sigma_mid_err, "chi2_per_dof": fit.chi2 / fit.dof})
            except NoMidpointError as exc:
                out.append({"seed": seed, "value": None, "none": str(exc), "bracket": exc.bracket})
        return out

    def levels_at_drop(self, references: list[float], drop: float = DROP) -> list[dict]:
        """Per seed: the level where the fitted curve is ``drop`` below ``references`` (per seed: the
        float accuracy of the reference arm's network of that seed), with its fit error."""
        out = []
        for seed, curve, reference in zip(self.seeds, self.curves, references):
            try:
                level, err = curve.level_at_drop(reference, drop)
                out.append({"seed": seed, "value": level, "fit_error": err, "reference": reference})
            except NoMidpointError as exc:
                out.append({"seed": seed, "value": None, "none": str(exc), "reference": reference})
        return out


def paired_ratios(arm: list[dict], reference: list[dict]) -> list[dict]:
    """Per seed, ``arm``'s value over ``reference``'s (same training seed), where both have one."""
    return [{"seed": a["seed"], "value": a["value"] / r["value"] if a["value"] is not None and r["value"] is not None else None}
            for a, r in zip(arm, reference)]  # fmt: skip


def summary(per_seed: list[dict]) -> dict:
    """Mean over the seeds that have a value, its standard error (std over seeds, ddof 1, / sqrt(n);
    with one seed: that seed's fit error), and the per-seed records."""
    values = np.array([r["value"] for r in per_seed if r["value"] is not None], float)
    out = {"per_seed": per_seed, "n": int(values.size), "of": len(per_seed), "mean": None, "error": None}
    if values.size:
        out["mean"], error = mean_and_error(values)
        out["error"] = error if values.size > 1 else next(r for r in per_seed if r["value"] is not None).get("fit_error")
    return out


def summary_cell(stats: dict, digits: int = 3, percent: bool = False) -> str:
    """``mean ± error`` over training seeds, ``(n of N seeds)`` when some had none, or why none."""
    if stats["mean"] is None:
        brackets = [r.get("bracket") for r in stats["per_seed"] if r.get("bracket")]
        if brackets:
            low, high = min(b[0] for b in brackets), max(b[1] for b in brackets)
            return f"none: between {low:.3g} and {high:.3g}"
        return "none"
    scale = 100.0 if percent else 1.0
    error = "" if stats["error"] is None else f" ± {scale * stats['error']:.{digits}f}"
    seeds = "" if stats["n"] == stats["of"] else f" ({stats['n']} of {stats['of']} seeds)"
    if stats["n"] == 1 and stats["of"] == 1:
        seeds = " (1 seed; fit error)" if stats["error"] is not None else " (1 seed)"
    return f"{scale * stats['mean']:.{digits}f}{error}{seeds}"


def per_seed_cell(stats: dict, digits: int = 3, percent: bool = False) -> str:
    """The per-seed values, ``-`` where a seed had none."""
    scale = 100.0 if percent else 1.0
    return ", ".join("-" if r["value"] is None else f"{scale * r['value']:.{digits}f}" for r in stats["per_seed"])


def values_summary(seeds: list[int], values: Sequence[float]) -> dict:
    """``summary`` of plain per-seed numbers (accuracies, differences)."""
    return summary([{"seed": s, "value": float(v)} for s, v in zip(seeds, values)])


def curve_record(arm: Arm) -> list[dict]:
    """The curves of an arm for the JSON record: per seed, the levels and the accuracy per repeat."""
    return [{"seed": s, "levels": c.sigmas, "accuracies": c.accuracies, "clean": clean} for s, c, clean in zip(arm.seeds, arm.curves, arm.clean)]


def compare(arms: dict[str, Arm], reference: str, drop: float = DROP) -> dict[str, dict]:
    """Per arm: its midpoint, its midpoint over the ``reference`` arm's (paired by training seed;
    None for the reference itself), and the level at ``drop`` below the reference arm's float
    accuracy of the same seed (so every arm is read at the same accuracy), each over the seeds."""
    base = arms[reference].midpoints()
    floats = arms[reference].clean
    out = {}
    for label, arm in arms.items():
        mids = base if label == reference else arm.midpoints()
        out[label] = {"midpoint": summary(mids), "ratio": None if label == reference else summary(paired_ratios(mids, base)),
                      "level_at_drop": summary(arm.levels_at_drop(floats, drop)), "curves": curve_record(arm)}  # fmt: skip
    return out


def comparison_cells(stats: dict) -> list[str]:
    """Table cells of one arm of ``compare``: midpoint (mean ± error), per seed, level at the drop,
    ratio to the reference."""
    ratio = "" if stats["ratio"] is None else f"{summary_cell(stats['ratio'], 2)} ({per_seed_cell(stats['ratio'], 2)})"
    return [summary_cell(stats["midpoint"]), per_seed_cell(stats["midpoint"]), summary_cell(stats["level_at_drop"]), ratio]


def chips_cell(per_seed: list[np.ndarray], digits: int = 1, percent: bool = True) -> str:
    """A metric over chips for each training seed (accuracy in percent by default; ``percent=False``
    for bits per character): the mean over seeds of the chip means ± its standard error over
    seeds, and the chip-to-chip std (mean over seeds)."""
    scale, unit = (100.0, "%") if percent else (1.0, "")
    means = np.array([values.mean() for values in per_seed])
    error = means.std(ddof=1) / np.sqrt(means.size) if means.size > 1 else 0.0
    spread = np.mean([values.std(ddof=1) if values.size > 1 else 0.0 for values in per_seed])
    return f"{scale * means.mean():.{digits}f} ± {scale * error:.{digits}f}{unit} (chips sd {scale * spread:.{digits}f})"


def arm_of(seeds: Sequence[int], curves: Sequence[NoiseCurve], clean: Sequence[float | None] | None = None) -> Arm:
    """An ``Arm`` of one curve (and float metric) per training seed."""
    arm = Arm()
    for seed, curve, value in zip(seeds, curves, clean if clean is not None else [None] * len(curves)):
        arm.add(seed, curve, value)
    return arm


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_panels(panels: dict[str, dict[str, NoiseCurve | Arm]], path: str | Path, xlabel: str | dict[str, str], title: str = "",
                fit: bool = True, columns: int = 3, ylabel: str = "test accuracy") -> Path:  # fmt: skip
    """One panel of curves (mean ± std over repeats; with ``fit``, the fitted curve where there is
    one) per entry, ``columns`` to a row; an ``Arm``'s training seeds share a colour (the label
    gives their midpoints' mean); the x axis is logarithmic where a panel's values span more than a
    factor 50; ``xlabel`` names the noise (one for all, or one per panel); an accuracy axis runs
    from 0 to 1, another (``ylabel``) fits its values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.8 * rows), squeeze=False)
    for ax, (panel, entries) in zip(axes.flat, panels.items()):
        for label, entry in entries.items():
            curves = entry.curves if isinstance(entry, Arm) else [entry]
            fits = []
            for curve in curves:
                try:
                    fits.append(curve.midpoint() if fit else None)
                except NoMidpointError:
                    fits.append(None)
            found = [f.sigma_mid for f in fits if f is not None]
            seeds = f", {len(curves)} seeds" if len(curves) > 1 else ""
            text = f"{label} (mid {np.mean(found):.3g}{seeds})" if found else label
            color = None
            for curve, logistic in zip(curves, fits):
                points = ax.errorbar(curve.sigmas, curve.mean, yerr=curve.std, fmt="o-" if not fit else "o", ms=3, capsize=2,
                                     color=color, alpha=0.8, label=text if color is None else None)  # fmt: skip
                color = points[0].get_color()
                if logistic is not None:
                    fine = np.logspace(np.log10(curve.sigmas.min()), np.log10(curve.sigmas.max()), 200)
                    ax.plot(fine, logistic.curve(fine), color=color, lw=1)
        values = np.concatenate([curve.sigmas for entry in entries.values() for curve in (entry.curves if isinstance(entry, Arm) else [entry])])
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
