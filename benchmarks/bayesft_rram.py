"""Study: BayesFT on the rram preset: does log-normal-perturbation training survive drift?

For the MLP and the LeNet-5-style CNN on digits, trained plain and with BayesFT's perturbation
(every parameter ``theta * exp(lambda)``, lambda ~ N(0, sigma_train^2), redrawn every step):
1. on the ``rram`` preset (5% write error, 2% read noise, 0.1% stuck-on/off devices, log-normal
   drift sigma 0.1 + 0.05 per decade), accuracy from 1 s to 10 years after programming;
2. on the same chip with the drift law's sigma swept (``device.drift.sigma`` in
   linspace(0.1, 1.5, 15), no growth with time, read at t = 0: each device G+ and G- times
   ``exp(sigma * n)``), accuracy and its midpoint sigma.
``--chips`` chips (programming and drift seeds) per point, ``--train-seeds`` trained networks per
arm. Prints markdown tables, writes benchmarks/results/bayesft_rram.png and the per-seed values
to bayesft_rram.json. ``python benchmarks/bayesft_rram.py [--quick] [--train-seeds N]``
"""

from __future__ import annotations

import numpy as np
import torch

import studylib
from xbarsim import ChipConfig, map_model
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig, accuracy
from xbarsim.sweeps.metrics import NoiseCurve

MODELS = {"MLP": lambda: zoo.build("mlp"), "LeNet-5": lambda: zoo.build("lenet5", image_size=8)}


def lognormal_curve(model: torch.nn.Module, cfg: ChipConfig, sigmas: np.ndarray, chips: int, split) -> NoiseCurve:
    """Accuracy under the chip's log-normal drift law at each sigma (no growth), at t = 0."""
    accuracies = np.zeros((len(sigmas), chips))
    for i, sigma in enumerate(sigmas):
        chip = map_model(model, cfg.with_values({"device.drift.sigma": float(sigma), "device.drift.sigma_per_decade": 0.0}))
        for c in range(chips):
            chip.program(c)
            chip.drift(0.0)
            accuracies[i, c] = accuracy(chip, split.x_test, split.y_test)
    return NoiseCurve(np.asarray(sigmas, float), accuracies, 1.0 / len(split.y_test))


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "bayesft_rram.png")
    parser.add_argument("--train-sigma", type=float, default=0.5, help="BayesFT sigma in training (default 0.5)")
    studylib.add_chips_option(parser, full=10, quick=3)
    args = parser.parse_args(argv)
    studylib.reproducible(args.seed, args.threads)
    env = studylib.environment()
    clock = studylib.Clock()
    chips = studylib.chip_count(parser, args)
    seeds = studylib.training_seeds(parser, args)
    sigmas = np.linspace(0.1, 1.5, 8 if args.quick else 15)
    middle = len(sigmas) // 2
    epochs = 10 if args.quick else 40
    cfg = ChipConfig.preset("rram")
    split = data.digits(args.seed)
    drift_rows = {label: [] for label, _ in studylib.DRIFT}
    sigma_rows, panels, drift_panels, results, gains = [], {}, {}, {}, []
    with studylib.progress(len(MODELS) * 2 * len(seeds), "bayesft") as bar:
        for name, build in MODELS.items():
            arms = {"plain": studylib.Arm(), "BayesFT": studylib.Arm()}
            over_time = {"plain": studylib.Arm(), "BayesFT": studylib.Arm()}
            for seed in seeds:
                base = TrainConfig(epochs=epochs, lr=3e-3, seed=seed)
                for training, train_cfg in (("plain", base), ("BayesFT", studylib.with_options(base, bayesft_sigma=args.train_sigma))):
                    model = studylib.trained(build, split, train_cfg)
                    clean = accuracy(model, split.x_test, split.y_test)
                    over_time[training].add(seed, studylib.drift_curve(model, cfg, [t for _, t in studylib.DRIFT], chips, split), clean)
                    arms[training].add(seed, lognormal_curve(model, cfg, sigmas, chips, split), clean)
                    clock.log(f"{name} {training}, training seed {seed}: 10 years {100 * over_time[training].curves[-1].mean[-1]:.1f}%, "
                              f"midpoint sigma {studylib.summary_cell(studylib.summary(arms[training].midpoints()[-1:]))}")  # fmt: skip
                    bar.update()
            stats = results[name] = studylib.compare(arms, "plain")
            for training, arm in over_time.items():
                stats[training]["over_time"] = studylib.curve_record(arm)
                for i, (label, _) in enumerate(studylib.DRIFT):
                    drift_rows[label].append(studylib.chips_cell([c.accuracies[i] for c in arm.curves]))
            gain = stats["BayesFT"]["ten_years_gain"] = studylib.values_summary(
                seeds, [b.mean[-1] - p.mean[-1] for b, p in zip(over_time["BayesFT"].curves, over_time["plain"].curves)])
            gains.append(f"{name} {studylib.summary_cell(gain, 1, percent=True)} points (per seed {studylib.per_seed_cell(gain, 1, percent=True)})")
            for training, arm in arms.items():
                clean = stats[training]["float_accuracy"] = studylib.values_summary(arm.seeds, arm.clean)
                sigma_rows.append([name, training, studylib.summary_cell(clean, 1, percent=True) + "%",
                                   studylib.chips_cell([c.accuracies[middle] for c in arm.curves]), *studylib.comparison_cells(stats[training])])  # fmt: skip
            panels[f"{name}: rram, log-normal sigma"] = arms
            drift_panels[f"{name}: rram over time"] = over_time
    columns = [f"{name}, {training}" for name in MODELS for training in ("plain", "BayesFT")]
    print(f"Digits, rram preset, {chips} chips per cell; {epochs} epochs, Adam lr 0.003; BayesFT training sigma {args.train_sigma}; "
          f"training seeds {', '.join(map(str, seeds))}, data split seed {args.seed}. Cells: mean over training seeds ± its standard "
          f"error (of each seed's mean over chips), and the chip-to-chip std.\n")  # fmt: skip
    print("#### Accuracy over time after programming (rram drift: sigma 0.1 + 0.05 per decade)\n")
    print(studylib.markdown_table(["time"] + columns, [[label] + cells for label, cells in drift_rows.items()]))
    print(f"\nBayesFT - plain after 10 years: {'; '.join(gains)}.")
    print(f"\n#### Accuracy over the log-normal drift sigma (t = 0, linspace(0.1, 1.5, {len(sigmas)}))\n")
    print(studylib.markdown_table(["model", "training", "float accuracy", f"on rram at sigma={sigmas[middle]:.2f}", "midpoint sigma",
                                   "per seed", f"sigma at -{100 * studylib.DROP:g} points", "BayesFT / plain midpoint (per seed)"],
                                  sigma_rows))  # fmt: skip
    xlabels = {**{panel: "seconds after programming" for panel in drift_panels}, **{panel: "log-normal drift sigma" for panel in panels}}
    path = studylib.plot_panels({**drift_panels, **panels}, args.plot, xlabels, "BayesFT on rram", fit=False, columns=2)
    print(f"\n{studylib.environment_line(env, clock.seconds())}")
    record = studylib.write_json(args.json, "bayesft_rram", args, env, clock.seconds(), results)
    print(f"plot: {path}; per-seed results: {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
