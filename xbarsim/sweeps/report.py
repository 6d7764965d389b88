"""Summaries of a sweep store: mean ± std over repeats per point, and midpoints per group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import NoiseCurve, NoMidpointError
from .spec import COST_METRICS
from .store import SweepResults


@dataclass(frozen=True)
class PointSummary:
    point: dict  # axis -> value
    mean: float
    std: float
    n: int  # successful repeats
    failed: int


def summarize(results: SweepResults, metric: str = "accuracy") -> list[PointSummary]:
    """One summary per point of the spec, in spec order."""
    points = results.spec.points()
    cols = results.columns
    out = []
    for pid, point in enumerate(points):
        mine = cols["point_id"] == pid
        ok = mine & (cols["status"] == "ok")
        values = cols[metric][ok]
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        out.append(PointSummary(point, float(values.mean()) if values.size else float("nan"), std, int(ok.sum()), int((mine & ~ok).sum())))
    return out


def noise_curves(results: SweepResults) -> dict[str, NoiseCurve]:
    """Accuracy (bits per character with ``metrics: [bpc]``) vs the noise axis's level for every combination
    of the other axes (label -> curve)."""
    spec = results.spec
    metric = spec.curve_metric
    noise_axis = spec.noise_axis
    sigmas = [float(s) for s in spec.axes[noise_axis]]
    others = [a for a in spec.axes if a != noise_axis]
    cols = results.ok().columns
    groups: dict[tuple, dict[float, list[float]]] = {}
    for i in range(len(cols["point_id"])):
        key = tuple(cols[a][i] for a in others)
        groups.setdefault(key, {}).setdefault(float(cols[noise_axis][i]), []).append(float(cols[metric][i]))
    curves = {}
    for key, by_sigma in groups.items():
        if set(by_sigma) != set(sigmas):
            continue  # an incomplete group has no curve yet
        repeats = min(len(v) for v in by_sigma.values())
        label = ", ".join(f"{a}={v:g}" if isinstance(v, float) else f"{a}={v}" for a, v in zip(others, key)) or "all"
        curves[label] = NoiseCurve(np.array(sigmas), np.array([by_sigma[s][:repeats] for s in sigmas]), metric=metric)
    return curves


def format_report(results: SweepResults) -> str:
    """A text table: every point's accuracy (bits per character with the bpc metric, energy and latency
    per inference with the cost metric), then midpoints where the spec asks for them."""
    spec = results.spec
    axes = list(spec.axes)
    summary = summarize(results)
    bpc = summarize(results, "bpc") if "bpc" in spec.metrics else []
    costs = [summarize(results, metric) for metric in COST_METRICS] if "cost" in spec.metrics else []
    widths = [max(len(a), 10) for a in axes]
    bpc_head = f" {'bits per char.':>16}" if bpc else ""
    cost_head = f" {'energy nJ':>10} {'latency us':>10}" if costs else ""
    head = " ".join(f"{a:>{w}}" for a, w in zip(axes, widths)) + f" {'accuracy':>18}{bpc_head}{cost_head} {'repeats':>8}"
    lines = [f"sweep {spec.name!r}: {len(summary)} points x {spec.repeats} repeats", *_progress(results), head, "-" * len(head)]
    for i, s in enumerate(summary):
        cells = " ".join(f"{_fmt(s.point[a]):>{w}}" for a, w in zip(axes, widths))
        acc = f"{100 * s.mean:6.2f} ± {100 * s.std:5.2f}%" if s.n else "(none)"
        bits = f" {f'{bpc[i].mean:.4f} ± {bpc[i].std:.4f}' if s.n else '(none)':>16}" if bpc else ""
        cost = "".join(f" {metric[i].mean:>10.4g}" for metric in costs)
        failed = f" ({s.failed} failed)" if s.failed else ""
        lines.append(f"{cells} {acc:>18}{bits}{cost} {s.n:>8}{failed}")
    if "midpoint" in spec.metrics:
        lines.append("")
        lines.append(f"midpoint noise level ({spec.noise_label()}{', on bits per character' if bpc else ''}):")
        for label, curve in noise_curves(results).items():
            try:
                fit = curve.midpoint()
                lines.append(f"  {label}: {fit.sigma_mid:.4g} ± {fit.sigma_mid_err:.2g}")
            except NoMidpointError as exc:
                lines.append(f"  {label}: none ({exc})")
    return "\n".join(lines)


def _progress(results: SweepResults) -> list[str]:
    """A line on an unfinished store: how many rows are in, and what to do about the rest."""
    if results.finished:
        return []
    status = results.columns["status"]
    ok, failed, total = int((status == "ok").sum()), int((status != "ok").sum()), results.spec.row_count()
    if ok + failed == total:
        return [f"incomplete: {failed} of {total} rows failed; re-run the sweep into this store to retry them"]
    failures = f", {failed} failed" if failed else ""
    return [f"unfinished: {ok} of {total} rows done{failures} (the sweep is running, or was stopped); "
            f"re-run it into this store to complete it"]  # fmt: skip


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
