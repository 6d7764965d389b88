"""Fit the program-and-verify presets' free loop parameters to the source's after-verify spread (docs/physics.md §2b).

    python benchmarks/fit_verify.py [--preset hermes|neurram] [--json bench-results/fit_verify.json]

Per preset, the loop runs on 16 target levels (the centres of 16 equal slices of g_min..g_max, 2 x 64 x 64 pairs a
level and device of the cell, seed 0: common random numbers, so the objective is a deterministic function of the
parameters) and its residual G_prog - G_target per level is compared with the source's spread at that level:

- hermes: aihwkit's two-device fit (``HermesNoiseModel``, num_devices 2) for one device of the cell, std / sqrt(2),
  as the clamped normal max(0, T + sigma n) has it (mean and std). Fixed: at most 30 iterations (the source), 30
  pulses a ramp, start at reset, pulses sized by the read error alone (step_us 0). Stage 1 frees the window
  (window_us, window_pct, window_max_us), the pulse (step_pct, step_spread) and reset_ratio, with the verify read
  noise at 0.02 uS + 2.04%; stage 2 frees the read noise (read_noise_us, read_noise_pct), window_us, window_pct and
  step_spread. Objective: the sum over levels of the squared misfits in units of the cross-check's tolerance
  (benchmarks/fidelity_chips.py: a weight bin's mean and std within 5% of its std): ((std - std*) / (0.05 std*))^2
  + ((mean - mean*) / (0.035 std*))^2 (a cell's two devices share the 5% of its std, sqrt(2) std*, in its mean),
  plus the same mean term for the cross-check's lowest |w| bin (``lowest_bin``: targets 0 to g_max / 8, pooled),
  which the 16 levels see only at 0.32 uS (a window that reaches 0 below it accepts devices at the RESET state).
- neurram: the fits at 1 s are deviations from the target with the first second's relaxation inside; the relaxation
  law adds to each device what its residual leaves of the fit (``starts_from: programmed``), so a device's variance
  at 1 s is the fit's whatever the residual (while the residual stays inside it, as +-1 uS does); what the loop must
  match is the fit's zero mean. Free: the pulse (step_us, step_growth, step_spread); fixed: +-1 uS, 30 pulses a
  ramp, 50 iterations (the source), verify read noise 0.3 uS. Objective: the sum over levels of (mean / std*)^2,
  plus (1 - converged)^2 per level, so that a pulse too coarse to converge does not win.

Method: a coarse grid, then Nelder-Mead (scipy) from its best point, parameters kept in their bounds by clipping; hermes in
two stages (the window and pulse, then the read noise), each from the previous one's values rounded to 3 digits.
Prints the fitted values, the objective, and the per-level table of the fitted loop beside the source; the presets
(xbarsim/presets.py) carry these values rounded as printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

from xbarsim import ChipConfig
from xbarsim.crossbar.laws import cells, device

LEVELS = 16
# hermes's terms in units of the cross-check's tolerance (benchmarks/fidelity_chips.py: a weight bin's mean and std
# within 5% of its std): the std 5%; the mean 5% of a cell's std, sqrt(2) sigma*, shared by its two devices' means
STD_TOLERANCE, MEAN_TOLERANCE = 0.05, 0.05 / np.sqrt(2)
SIDE = 64
FIT = {  # preset: stages of (free fields, lower bounds, upper bounds, coarse grid per field); a stage starts from the
    # previous stage's result (rounded to 3 significant digits)
    "hermes": [
        (("programming.window_us", "programming.window_pct", "programming.window_max_us", "programming.pulse.step_pct",
          "programming.pulse.step_spread", "programming.pulse.reset_ratio"),
         (0.01, 0.0, 0.1, 10.0, 0.0, 0.2), (2.0, 100.0, 5.0, 300.0, 2.0, 3.0),
         ((0.05, 0.1), (66.6, 80.0), (1.25, 1.35), (100.0,), (0.8, 1.0), (1.0,))),
        (("programming.read_noise_us", "programming.read_noise_pct", "programming.window_us", "programming.window_pct",
          "programming.pulse.step_spread"),
         (0.0, 0.0, 0.01, 0.0, 0.0), (1.0, 20.0, 2.0, 100.0, 2.0),
         ((0.02, 0.1), (2.0, 5.0), (None,), (None,), (None,))),
    ],
    "neurram": [
        (("programming.pulse.step_us", "programming.pulse.step_growth", "programming.pulse.step_spread"),
         (0.1, 0.0, 0.0), (5.0, 1.0, 2.0),
         ((1.0, 1.5, 2.0, 2.5), (0.0, 0.05, 0.1), (0.3, 0.5, 0.7))),
    ],
}  # fmt: skip


def rounded(x: float) -> float:
    return float(f"{x:.3g}")


def levels(cfg: ChipConfig) -> np.ndarray:
    """The target levels (uS): centres of LEVELS equal slices of g_min..g_max."""
    edges = np.linspace(cfg.device.g_min_us, cfg.device.g_max_us, LEVELS + 1)
    return (edges[:-1] + edges[1:]) / 2


def source_moments(cfg: ChipConfig, level: float) -> tuple[float, float]:
    """Mean and std (uS) of max(0, T + sigma n) - T, sigma the preset's write-noise law (the source's fit) for one
    device of the cell."""
    dev = cfg.device
    sigma = float(device.write_noise_std(np.array([level]), dev.write_noise, dev.g_max_us, cfg.mapping.devices_per_polarity)[0])
    a = level / sigma
    first = level * norm.cdf(a) + sigma * norm.pdf(a)
    second = (level * level + sigma * sigma) * norm.cdf(a) + level * sigma * norm.pdf(a)
    return first - level, float(np.sqrt(max(second - first * first, 0.0)))


def loop_levels(cfg: ChipConfig, seed: int = 0, side: int = SIDE) -> list[dict]:
    """The loop's outcome per level: residual mean and std of all devices (uS), convergence, pulses a device."""
    rows = []
    for level in levels(cfg):
        target = np.full((2, side, side), level, np.float32)
        programmed = cells.program(target, cfg, seed)
        e = programmed.g_prog.astype(np.float64) - target
        mean, std = source_moments(cfg, float(level))
        rows.append({"level_us": float(level), "mean_us": float(e.mean()), "std_us": float(e.std()), "source_mean_us": mean,
                     "source_std_us": std, "converged": float(programmed.converged.mean()), "pulses_mean": float(programmed.pulses.mean())})  # fmt: skip
    return rows


def lowest_bin(cfg: ChipConfig, seed: int = 0, side: int = SIDE // 2) -> dict:
    """The loop's residual mean pooled over the cross-check's lowest |w| bin (LEVELS levels evenly in g_min .. g_min +
    (g_max - g_min) / 8, 2 x side x side pairs each), beside the source's pooled mean and its mean std (uS)."""
    dev = cfg.device
    levels = dev.g_min_us + (np.arange(LEVELS) + 0.5) / LEVELS * (dev.g_max_us - dev.g_min_us) / 8
    ours = [cells.program(np.full((2, side, side), t, np.float32), cfg, seed).g_prog.astype(np.float64).mean() - t
            for t in levels]
    source = np.array([source_moments(cfg, float(t)) for t in levels])
    return {"mean_us": float(np.mean(ours)), "source_mean_us": float(source[:, 0].mean()),
            "source_std_us": float(source[:, 1].mean())}


def objective(name: str, rows: list[dict], low: dict | None = None) -> float:
    """The sum of squared misfits (module doc); hermes with its lowest |w| bin's pooled mean (``low``) as one more
    term."""
    if name == "hermes":
        def mean_term(r: dict) -> float:
            return ((r["mean_us"] - r["source_mean_us"]) / (MEAN_TOLERANCE * r["source_std_us"])) ** 2

        def std_term(r: dict) -> float:
            return ((r["std_us"] - r["source_std_us"]) / (STD_TOLERANCE * r["source_std_us"])) ** 2

        return mean_term(low) + sum(mean_term(r) + std_term(r) for r in rows)
    return sum((r["mean_us"] / r["source_std_us"]) ** 2 + (1 - r["converged"]) ** 2 for r in rows)


def measured(name: str, cfg: ChipConfig) -> tuple[list[dict], dict | None]:
    """(the loop per level, hermes's lowest |w| bin or None)."""
    return loop_levels(cfg), lowest_bin(cfg) if name == "hermes" else None


def fit_stage(name: str, base: ChipConfig, stage: tuple) -> tuple[dict, float, int, tuple]:
    """One stage: the coarse grid's best, then Nelder-Mead from it; (fitted fields, objective, evaluations, grid best)."""
    fields, lower, upper, grid = stage
    grid = [values if values != (None,) else (_value(base, f),)
            for f, values in zip(fields, grid)]

    def configured(x) -> ChipConfig:
        return base.with_values({f: float(v) for f, v in zip(fields, np.clip(x, lower, upper))})

    def cost(x) -> float:
        return objective(name, *measured(name, configured(x)))

    coarse = min(itertools.product(*grid), key=cost)
    result = minimize(cost, np.array(coarse), method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-4, "maxfev": 160 * len(fields) // 4 + 80})
    best = {f: rounded(v) for f, v in zip(fields, np.clip(result.x, lower, upper))}
    return best, float(result.fun), int(result.nfev), coarse


def _value(cfg: ChipConfig, field: str) -> float:
    value = cfg
    for part in field.split("."):
        value = getattr(value, part)
    return float(value)


# hermes: pulses sized by the read error alone (closed-loop iterative programming), the read noise of the earlier fit
START = {"hermes": {"programming.pulse.step_us": 0.0, "programming.pulse.step_pct": 100.0,
                    "programming.read_noise_us": 0.02, "programming.read_noise_pct": 2.04},
         "neurram": {}}  # before stage 1


def fit(name: str) -> dict:
    cfg, stages = ChipConfig.preset(name).with_values(START[name]), []
    for stage in FIT[name]:
        best, value, evaluations, coarse = fit_stage(name, cfg, stage)
        cfg = cfg.with_values(best)
        stages.append({"fields": best, "objective": value, "evaluations": evaluations, "coarse_best": dict(zip(stage[0], map(float, coarse)))})
    rows, low = measured(name, cfg)
    fields = {f: v for s in stages for f, v in s["fields"].items()}
    return {"preset": name, "fields": fields, "stages": stages, "objective": objective(name, rows, low), "levels": rows,
            "lowest_bin": low}


def print_fit(f: dict) -> None:
    print(f"\n### {f['preset']}: objective {f['objective']:.4f} at the rounded values\n")
    for k, stage in enumerate(f["stages"], 1):
        print(f"stage {k}: grid best {stage['coarse_best']}; objective {stage['objective']:.4f} after {stage['evaluations']} evaluations")
    print("fitted (3 significant digits): " + ", ".join(f"{k} = {v:.3g}" for k, v in f["fields"].items()))
    if f["lowest_bin"]:
        low = f["lowest_bin"]
        print(f"lowest |w| bin (targets 0 to g_max / 8, pooled): residual mean {low['mean_us']:+.4f} uS, "
              f"source {low['source_mean_us']:+.4f} uS (mean std {low['source_std_us']:.3f} uS)")
    print("\n| G_target (uS) | residual mean (uS) | source mean | residual std (uS) | source std | std / source | converged | pulses |")
    print("|---|---|---|---|---|---|---|---|")
    for r in f["levels"]:
        print(f"| {r['level_us']:.2f} | {r['mean_us']:+.3f} | {r['source_mean_us']:+.3f} | {r['std_us']:.3f} | {r['source_std_us']:.3f} | "
              f"{r['std_us'] / r['source_std_us']:.2f} | {r['converged']:.2%} | {r['pulses_mean']:.1f} |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(FIT), action="append", help="the presets to fit (default: both)")
    parser.add_argument("--json", type=Path, default=Path("bench-results/fit_verify.json"))
    args = parser.parse_args()
    fits = [fit(name) for name in (args.preset or sorted(FIT))]
    for f in fits:
        print_fit(f)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(fits, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
