"""Study: Noisy Machines on digits: does distillation add noise tolerance to weight-noise training?

For the MLP and the LeNet-5-style CNN, three ways of training:
- plain;
- noise injection: additive Gaussian weight noise ``eta_train * (max W_l - min W_l)`` per layer,
  redrawn every forward;
- distillation from the plain network (the clean teacher) plus the same noise injection,
  ``L = (1 - beta) CE + beta T^2 CE(soft targets)``.
Each is tested under weight noise of that kind (one draw per repeat: a noisy chip) over a log
grid of eta; the table gives the midpoint eta of each, and its ratio to noise injection alone
(Zhou et al., "Noisy Machines", 2020, report up to 2x). Prints a markdown table and writes the
curves to benchmarks/results/noisy_machines_digits.png.
``python benchmarks/noisy_machines_digits.py [--quick] [--models mlp lenet5]``
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
    clock = studylib.Clock()
    etas = np.logspace(-2.5, 0.5, 7 if args.quick else 13)
    repeats = 3 if args.quick else 10
    base = TrainConfig(epochs=10 if args.quick else 40, lr=3e-3, seed=args.seed)
    noisy = studylib.with_options(base, weight_noise_eta=args.train_eta)
    distilled = studylib.with_options(noisy, distill_temperature=args.temperature, distill_beta=args.beta)
    split = data.digits(args.seed)
    noise = WeightNoiseKind()
    rows, panels = [], {}
    with studylib.progress(len(args.models) * len(TRAININGS), "noisy machines") as bar:
        for key in args.models:
            name, build = MODELS[key]
            teacher = studylib.trained(build, split, base)
            models = {"plain": teacher, "noise injection": studylib.trained(build, split, noisy)}
            models["distillation + noise injection"] = studylib.trained(build, split, distilled, teacher=teacher)
            curves = {}
            for training, model in models.items():
                curves[training] = studylib.curve_under(model, split, etas, repeats, noise, args.seed)
                clock.log(f"{name} {training}: midpoint eta {studylib.midpoint_cell(curves[training])}")
                bar.update()
            for training, curve in curves.items():
                rows.append((name, training, f"{100 * curve.mean[0]:.1f}%", studylib.midpoint_cell(curve),
                             studylib.midpoint_ratio(curve, curves["noise injection"])))  # fmt: skip
            panels[name] = curves
    print(f"Digits ({len(split.y_train)} train / {len(split.y_test)} test); weight noise eta * (max W - min W) per layer on every "
          f"weight matrix, one draw per repeat, eta logspace(-2.5, 0.5, {len(etas)}), {repeats} repeats; {base.epochs} epochs, "
          f"Adam lr {base.lr}, seed {args.seed}; training eta {args.train_eta}, distillation T {args.temperature}, "
          f"beta {args.beta}.\n")  # fmt: skip
    print(studylib.markdown_table(
        ["model", "training", f"accuracy at eta={etas[0]:.3g}", "midpoint eta", "midpoint / noise injection's"], rows))  # fmt: skip
    path = studylib.plot_panels(panels, args.plot, "weight noise eta (x each layer's weight range)", "Noisy Machines on digits")
    print(f"\nplot: {path}; run time {clock.seconds():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
