"""Study: Noisy Machines on digits: does distillation add noise tolerance to weight-noise training?

For the MLP and the LeNet-5-style CNN, three ways of training:
- plain;
- noise injection: additive Gaussian weight noise ``eta_train * (max W_l - min W_l)`` per layer,
  redrawn every forward;
- distillation from the plain network (the clean teacher) plus the same noise injection,
  ``L = (1 - beta) CE + beta T^2 CE(soft targets)``.
Each is tested under weight noise of that kind (one draw per repeat: a noisy chip) over a log
grid of eta; the table gives the midpoint eta of each, and its ratio to noise injection alone
(Zhou et al., "Noisy Machines", 2020, report up to 2x) and to plain training, as mean ± standard
error over ``--train-seeds`` training seeds. Prints a markdown table, writes the curves to
benchmarks/results/noisy_machines_digits.png and the per-seed values to noisy_machines_digits.json.
``python benchmarks/noisy_machines_digits.py [--quick] [--train-seeds N] [--models mlp lenet5]``
"""

from __future__ import annotations

import numpy as np

import studylib
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig
from xbarsim.sweeps.noise_kinds import WeightNoiseKind

MODELS = {"mlp": ("MLP", lambda: zoo.build("mlp")), "lenet5": ("LeNet-5", lambda: zoo.build("lenet5", image_size=8))}
TRAININGS = ("plain", "noise injection", "distillation + noise injection")


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "noisy_machines_digits.png")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--train-eta", type=float, default=0.1, help="weight-noise eta in training (default 0.1)")
    parser.add_argument("--temperature", type=float, default=4.0, help="distillation temperature T (default 4)")
    parser.add_argument("--beta", type=float, default=0.5, help="weight of the distillation term (default 0.5)")
    args = parser.parse_args(argv)
    studylib.reproducible(args.seed, args.threads)
    env = studylib.environment()
    clock = studylib.Clock()
    seeds = studylib.training_seeds(parser, args)
    etas = np.logspace(-2.5, 0.5, 7 if args.quick else 13)
    repeats = 3 if args.quick else 10
    epochs = 10 if args.quick else 40
    split = data.digits(args.seed)
    noise = WeightNoiseKind()
    rows, panels, results = [], {}, {}
    with studylib.progress(len(args.models) * len(TRAININGS) * len(seeds), "noisy machines") as bar:
        for key in args.models:
            name, build = MODELS[key]
            arms = {training: studylib.Arm() for training in TRAININGS}
            for seed in seeds:
                base = TrainConfig(epochs=epochs, lr=3e-3, seed=seed)
                noisy = studylib.with_options(base, weight_noise_eta=args.train_eta)
                distilled = studylib.with_options(noisy, distill_temperature=args.temperature, distill_beta=args.beta)
                teacher = studylib.trained(build, split, base)
                models = {"plain": teacher, "noise injection": studylib.trained(build, split, noisy)}
                models["distillation + noise injection"] = studylib.trained(build, split, distilled, teacher=teacher)
                for training, model in models.items():
                    arms[training].add(seed, *studylib.measured(model, split, etas, repeats, noise, args.seed))
                    clock.log(f"{name} {training}, training seed {seed}: midpoint eta "
                              f"{studylib.summary_cell(studylib.summary(arms[training].midpoints()[-1:]))}")  # fmt: skip
                    bar.update()
            results[name] = studylib.compare(arms, "noise injection")
            to_plain = studylib.compare(arms, "plain")
            for training, arm in arms.items():
                results[name][training]["ratio_to_plain"] = to_plain[training]["ratio"]
                clean = studylib.values_summary(arm.seeds, arm.clean)
                results[name][training]["clean_accuracy"] = clean
                to_plain_cell = "" if training == "plain" else studylib.summary_cell(to_plain[training]["ratio"], 2)
                rows.append([name, training, studylib.summary_cell(clean, 1, percent=True) + "%",
                             *studylib.comparison_cells(results[name][training]), to_plain_cell])  # fmt: skip
            panels[name] = arms
    print(f"Digits ({len(split.y_train)} train / {len(split.y_test)} test); weight noise eta * (max W - min W) per layer on every "
          f"weight matrix, one draw per repeat, eta logspace(-2.5, 0.5, {len(etas)}), {repeats} repeats; {epochs} epochs, "
          f"Adam lr 0.003; training eta {args.train_eta}, distillation T {args.temperature}, beta {args.beta}; training seeds "
          f"{', '.join(map(str, seeds))}, data split and noise seed {args.seed}. Cells: mean ± standard error over training "
          f"seeds; eta at -{100 * studylib.DROP:g} points: where the curve is {100 * studylib.DROP:g} points below the noise-injection "
          f"network's float accuracy of the same seed.\n")  # fmt: skip
    print(studylib.markdown_table(["model", "training", "float accuracy", "midpoint eta", "per seed", f"eta at -{100 * studylib.DROP:g} points",
                                   "midpoint / noise injection's (per seed)", "midpoint / plain's"], rows))  # fmt: skip
    path = studylib.plot_panels(panels, args.plot, "weight noise eta (x each layer's weight range)", "Noisy Machines on digits")
    print(f"\n{studylib.environment_line(env, clock.seconds())}")
    record = studylib.write_json(args.json, "noisy_machines_digits", args, env, clock.seconds(), results)
    print(f"plot: {path}; per-seed results: {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
