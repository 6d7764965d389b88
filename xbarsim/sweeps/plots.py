"""Figures (matplotlib, Agg backend): noise curves with their midpoint fits, and a sweep's
accuracy against its axes (a logarithmic axis where the swept values are log-spaced) and as a
heat map in percent. Titles wrap to the figure's width; lines that share values are told apart by
their markers and drawn a little apart (dodged) so that none hides another."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from .metrics import NoiseCurve, NoMidpointError

TITLE_CHARS = 60
"""Characters per title line: a 6.4-inch figure holds about 64 at 10 pt."""
MARKERS = "osD^vP*X<>"
DODGE = 0.012
"""How far apart lines sharing an x value are drawn, as a fraction of the x axis's span (log span on a log axis)."""
_MID_SYMBOL = {"sigma": r"\sigma", "eta": r"\eta"}


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


def set_title(ax, title: str, fontsize: int = 10) -> None:
    """``title``, wrapped so that no line runs past the figure's edges."""
    ax.set_title(textwrap.fill(title, TITLE_CHARS), fontsize=fontsize)


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
            symbol = _MID_SYMBOL.get(level_name, f"\\mathrm{{{level_name}}}")
            label = f"{label}: ${symbol}_{{mid}}$ = {fit.sigma_mid:.3g} ± {fit.sigma_mid_err:.2g}"
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
        set_title(ax, title)
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
        title = f"{spec.name}: {spec.noise_label()}"
        written.append(plot_noise_curves(noise_curves(results), path.with_stem(path.stem + "_noise"), title,
                                         spec.noise_kind().level_name))  # fmt: skip
    if not axes:
        return written
    summary = summarize(results)
    fixed_noise = summary if noise_axis is None else [s for s in summary if s.point[noise_axis] == spec.axes[noise_axis][0]]
    x_axis, line_axis = axes[0], (axes[1] if len(axes) > 1 else None)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x_values = spec.axes[x_axis]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x_values)
    log = log_spaced(x_values)
    lines = spec.axes[line_axis] if line_axis else [None]
    for k, line_value in enumerate(lines):
        rows = [s for s in fixed_noise if line_axis is None or s.point[line_axis] == line_value]
        positions = [s.point[x_axis] if numeric else x_values.index(s.point[x_axis]) for s in rows]
        shift = DODGE * (k - (len(lines) - 1) / 2)
        ax.errorbar(_dodged(positions, shift, x_values if numeric else range(len(x_values)), log), [s.mean for s in rows],
                    yerr=[s.std for s in rows], marker=MARKERS[k % len(MARKERS)], ms=4, capsize=2,
                    label=None if line_axis is None else f"{line_axis} = {line_value}")  # fmt: skip
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # the swept values are the only labels
    if log or not numeric:
        ax.set_xticks(x_values if numeric else range(len(x_values)), [_short(v) for v in x_values])
    if len(x_values) > 6:
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.set_xlabel(x_axis)
    ax.set_ylabel(f"accuracy (mean ± std of {spec.repeats})")
    ax.grid(True, alpha=0.3)
    if line_axis:
        ax.legend(fontsize=8)
    set_title(ax, spec.name)
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
        set_title(ax, spec.name)
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
    set_title(ax, f"{spec.name}: accuracy vs energy ({spec.chip_config().cost.source})", fontsize=9)
    return save_figure(fig, path)


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _dodged(positions: list, shift: float, swept, log: bool) -> np.ndarray:
    """``positions`` moved by ``shift`` of the span of ``swept`` (of its logarithm on a log axis)."""
    x, span = np.asarray(positions, np.float64), np.asarray(list(swept), np.float64)
    if log:
        return x * 10.0 ** (shift * np.log10(span.max() / span.min()))
    width = span.max() - span.min()
    return x + shift * (width if width > 0 else 1.0)
