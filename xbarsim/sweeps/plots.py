"""Figures (matplotlib, Agg backend): noise curves with their midpoint fits, and a sweep's
accuracy against its axes (a logarithmic axis where the swept values are log-spaced) and as a
heat map in percent."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from .metrics import NoiseCurve, NoMidpointError


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Lay out ``fig``, write it (PNG or PDF by the suffix; folders made) and close it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def log_spaced(values: list) -> bool:
    """Whether swept values read better on a log axis: positive numbers spanning a factor of at
    least 4 whose steps are more even in log than in linear terms (0.5, 1, 2, 4, 8 or 1 s..10 y:
    yes; 4, 6, 8 bits: no)."""
    if len(values) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
        return False
    ordered = np.sort(np.asarray(values, np.float64))
    if ordered[-1] / ordered[0] < 4:
        return False

    def unevenness(steps: np.ndarray) -> float:
        return float(np.std(steps) / np.mean(steps)) if np.mean(steps) > 0 else np.inf

    return unevenness(np.diff(np.log(ordered))) < unevenness(np.diff(ordered))


def plot_noise_curves(curves: dict[str, NoiseCurve], path: str | Path, title: str = "", level_name: str = "sigma") -> Path:
    """Accuracy (or bits per character) vs noise level (mean ± std over repeats) per labelled curve, with
    the logistic fit and its midpoint where one exists; written as PNG or PDF by the file's suffix."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, curve in curves.items():
        try:
            fit = curve.midpoint()
            label = f"{label}: $\\sigma_{{mid}}$ = {fit.sigma_mid:.3g} ± {fit.sigma_mid_err:.2g}"
        except NoMidpointError:
            fit = None
        points = ax.errorbar(curve.sigmas, curve.mean, yerr=curve.std, fmt="o", ms=4, capsize=2, label=label)
        if fit is not None:
            fine = np.logspace(np.log10(curve.sigmas.min()), np.log10(curve.sigmas.max()), 200)
            color = points[0].get_color()
            ax.plot(fine, fit.curve(fine), color=color, lw=1.2)
            ax.axvline(fit.sigma_mid, color=color, ls=":", lw=1)
    bpc = any(curve.metric == "bpc" for curve in curves.values())
    ax.set_xscale("log")
    ax.set_xlabel(f"noise {level_name}")
    ax.set_ylabel("test bits per character" if bpc else "test accuracy")
    if not bpc:
        ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    if curves:  # a store still running may have no complete curve yet
        ax.legend(fontsize=7, loc="upper left" if bpc else "lower left")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_sweep(results, path: str | Path) -> list[Path]:
    """The figures of a sweep: accuracy vs its first axis (one line per value of the second),
    a heat map when it has two or more axes, noise curves (the kind named) when it has a noise axis.
    ``path`` names the first figure; the others get suffixes. Returns the files written."""
    from .report import noise_curves, summarize
    plt = pyplot()
    path = Path(path)
    spec = results.spec
    noise_axis = spec.noise_axis
    axes = [a for a in spec.axes if a != noise_axis]
    written = []
    if noise_axis is not None:
        title = textwrap.fill(f"{spec.name}: {spec.noise_label()}", 72)
        written.append(plot_noise_curves(noise_curves(results), path.with_stem(path.stem + "_noise"), title,
                                         spec.noise_kind().level_name))  # fmt: skip
    if not axes:
        return written
    summary = summarize(results)
    fixed_noise = summary if noise_axis is None else [s for s in summary if s.point[noise_axis] == spec.axes[noise_axis][0]]
    x_axis, line_axis = axes[0], (axes[1] if len(axes) > 1 else None)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for line_value in (spec.axes[line_axis] if line_axis else [None]):
        rows = [s for s in fixed_noise if line_axis is None or s.point[line_axis] == line_value]
        xs = [s.point[x_axis] for s in rows]
        numeric = all(isinstance(v, (int, float)) for v in xs)
        positions = xs if numeric else list(range(len(xs)))
        ax.errorbar(positions, [s.mean for s in rows], yerr=[s.std for s in rows], marker="o", ms=4, capsize=2,
                    label=None if line_axis is None else f"{line_axis} = {line_value}")  # fmt: skip
        if not numeric:
            ax.set_xticks(positions, [str(v) for v in xs])
    if log_spaced(spec.axes[x_axis]):
        ax.set_xscale("log")
    ax.set_xlabel(x_axis)
    ax.set_ylabel(f"accuracy (mean ± std of {spec.repeats})")
    ax.grid(True, alpha=0.3)
    if line_axis:
        ax.legend(fontsize=8)
    ax.set_title(spec.name)
    written.append(save_figure(fig, path))
    if line_axis:
        grid = np.full((len(spec.axes[line_axis]), len(spec.axes[x_axis])), np.nan)
        for s in fixed_noise:
            grid[spec.axes[line_axis].index(s.point[line_axis]), spec.axes[x_axis].index(s.point[x_axis])] = s.mean
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        percent = 100 * grid  # the cells, their labels and the colour bar all in %
        image = ax.imshow(percent, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=100)
        ax.set_xticks(range(len(spec.axes[x_axis])), [f"{v:g}" if isinstance(v, float) else str(v) for v in spec.axes[x_axis]])
        ax.set_yticks(range(len(spec.axes[line_axis])), [f"{v:g}" if isinstance(v, float) else str(v) for v in spec.axes[line_axis]])
        for (i, j), value in np.ndenumerate(percent):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8, color="w" if value < 60 else "k")
        ax.set_xlabel(x_axis)
        ax.set_ylabel(line_axis)
        fig.colorbar(image, ax=ax, label=f"accuracy, % (mean of {spec.repeats})")
        ax.set_title(spec.name)
        written.append(save_figure(fig, path.with_stem(path.stem + "_heatmap")))
    if "cost" in spec.metrics:
        written.append(plot_accuracy_energy(results, x_axis, line_axis, path.with_stem(path.stem + "_energy")))
    return written


def plot_accuracy_energy(results, x_axis: str, line_axis: str | None, path: str | Path) -> Path:
    """Accuracy (mean ± std) against energy per inference (mean, log axis), one line per value of
    ``line_axis`` through the values of ``x_axis`` (each point labelled with its ``x_axis`` value), at
    the first value of a noise axis."""
    from .report import summarize

    plt = pyplot()
    spec = results.spec
    noise_axis = spec.noise_axis
    pairs = [(s, e.mean) for s, e in zip(summarize(results), summarize(results, "energy_per_inference"))
             if s.n and (noise_axis is None or s.point[noise_axis] == spec.axes[noise_axis][0])]  # fmt: skip
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for line_value in (spec.axes[line_axis] if line_axis else [None]):
        rows = [s for s, _ in pairs if line_axis is None or s.point[line_axis] == line_value]
        xs = [e for s, e in pairs if line_axis is None or s.point[line_axis] == line_value]
        ax.errorbar(xs, [s.mean for s in rows], yerr=[s.std for s in rows], marker="o", ms=4, capsize=2,
                    label=None if line_axis is None else f"{line_axis} = {line_value}")  # fmt: skip
        for s, x in zip(rows, xs):
            ax.annotate(_short(s.point[x_axis]), (x, s.mean), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"energy per inference, nJ (points: {x_axis})")
    ax.set_ylabel(f"accuracy (mean ± std of {spec.repeats})")
    ax.grid(True, which="both", alpha=0.3)
    if line_axis:
        ax.legend(fontsize=8)
    ax.set_title(f"{spec.name}: accuracy vs energy ({spec.chip_config().cost.source})", fontsize=9)
    return save_figure(fig, path)


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
