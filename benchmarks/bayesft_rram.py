"""Study: BayesFT on the rram preset: does log-normal-perturbation training survive drift?

For the MLP and the LeNet-5-style CNN on digits, trained plain and with BayesFT's perturbation
(every parameter ``theta * exp(lambda)``, lambda ~ N(0, sigma_train^2), redrawn every step):
1. on the ``rram`` preset (5% write error, 2% read noise, 0.1% stuck-on/off devices, log-normal
   drift sigma 0.1 + 0.05 per decade), accuracy from 1 s to 10 years after programming;
2. on the same chip with the drift law's sigma swept (``device.drift.sigma`` in
   linspace(0.1, 1.5, 15), no growth with time, read at t = 0: each device G+ and G- times
   ``exp(sigma * n)``), accuracy and its midpoint sigma.
``--chips`` chips (programming and drift seeds) per point. Prints markdown tables and writes
benchmarks/results/bayesft_rram.png. ``python benchmarks/bayesft_rram.py [--quick]``
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
    return NoiseCurve(np.asarray(sigmas, float), accuracies)


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "bayesft_rram.png")
    parser.add_argument("--train-sigma", type=float, default=0.5, help="BayesFT sigma in training (default 0.5)")
    studylib.add_chips_option(parser, full=10, quick=3)
    args = parser.parse_args(argv)
    studylib.reproducible(args.seed, args.threads)
    clock = studylib.Clock()
    chips = studylib.chip_count(parser, args)
    sigmas = np.linspace(0.1, 1.5, 8 if args.quick else 15)
    base = TrainConfig(epochs=10 if args.quick else 40, lr=3e-3, seed=args.seed)
    trainings = {"plain": base, "BayesFT": studylib.with_options(base, bayesft_sigma=args.train_sigma)}
    cfg = ChipConfig.preset("rram")
    split = data.digits(args.seed)
    drift_rows = {label: [] for label, _ in studylib.DRIFT}
    sigma_rows, panels, drift_panels = [], {}, {}
    with studylib.progress(len(MODELS) * len(trainings), "bayesft") as bar:
        for name, build in MODELS.items():
            curves = {}
            for training, train_cfg in trainings.items():
                model = studylib.trained(build, split, train_cfg)
                over_time = studylib.drift_curve(model, cfg, [t for _, t in studylib.DRIFT], chips, split)
                for (label, _), values in zip(studylib.DRIFT, over_time.accuracies):
                    drift_rows[label].append(studylib.mean_std_cell(values))
                curves[training] = lognormal_curve(model, cfg, sigmas, chips, split)
                drift_panels.setdefault(f"{name}: rram over time", {})[training] = over_time
                sigma_rows.append([name, training, f"{100 * accuracy(model, split.x_test, split.y_test):.1f}%",
                                   studylib.mean_std_cell(curves[training].accuracies[len(sigmas) // 2]),
                                   studylib.midpoint_cell(curves[training])])  # fmt: skip
                clock.log(f"{name} {training}: 10 years {drift_rows[studylib.DRIFT[-1][0]][-1]}, midpoint sigma {sigma_rows[-1][-1]}")
                bar.update()
            sigma_rows[-1].append(studylib.midpoint_ratio(curves["BayesFT"], curves["plain"]))
            sigma_rows[-2].append("")
            panels[f"{name}: rram, log-normal sigma"] = curves
    columns = [f"{name}, {training}" for name in MODELS for training in trainings]
    print(f"Digits, rram preset, {chips} chips per cell; {base.epochs} epochs, Adam lr {base.lr}, seed {args.seed}; "
          f"BayesFT training sigma {args.train_sigma}.\n")  # fmt: skip
    print("#### Accuracy over time after programming (rram drift: sigma 0.1 + 0.05 per decade)\n")
    print(studylib.markdown_table(["time"] + columns, [[label] + cells for label, cells in drift_rows.items()]))
    print(f"\n#### Accuracy over the log-normal drift sigma (t = 0, linspace(0.1, 1.5, {len(sigmas)}))\n")
    print(studylib.markdown_table(["model", "training", "float accuracy", f"on rram at sigma={sigmas[len(sigmas) // 2]:.2f}",
                                   "midpoint sigma", "BayesFT / plain midpoint"], sigma_rows))  # fmt: skip
    xlabels = {**{panel: "seconds after programming" for panel in drift_panels}, **{panel: "log-normal drift sigma" for panel in panels}}
    path = studylib.plot_panels({**drift_panels, **panels}, args.plot, xlabels, "BayesFT on rram", fit=False, columns=2)
    print(f"\nplot: {path}; run time {clock.seconds():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
