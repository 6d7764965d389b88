"""Figures (matplotlib, Agg backend): noise curves with their midpoint fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import NoiseCurve, NoMidpointError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_noise_curves(curves: dict[str, NoiseCurve], path: str | Path, title: str = "") -> Path:
    """Accuracy vs noise sigma (mean ± std over repeats) per labelled curve, with the logistic
    fit and its midpoint where one exists; written as PNG or PDF by the file's suffix."""
    plt = _pyplot()
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
    ax.set_xscale("log")
    ax.set_xlabel("noise sigma")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
