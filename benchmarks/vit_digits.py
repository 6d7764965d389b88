"""Study: a vision transformer against LeNet-5 on a PCM chip (scikit-learn digits).

1. Accuracy on the ``pcm`` preset from programming (t = 0) to 10 years, without and with global drift
   compensation, on ``--chips`` chips (programming seeds) per cell.
2. Robustness of the float networks: the midpoint of the accuracy curve under additive activation noise
   after every module (sigma ``logspace(-2, 2, 17)``) and under Noisy Machines' weight noise (eta
   ``logspace(-2.5, 0.5, 13)``), 10 repeats per level.

The ViT (``zoo.vit``): patches of 2x2 pixels (16 tokens and a class token), 2 pre-norm encoder layers of
width 64 with 4 heads (``nn.TransformerEncoder``: every attention projection and MLP layer on tiles; the
score and context products digital), MLP 128. Both trained 40 epochs (Adam, lr 0.003 LeNet-5, 0.001 ViT,
cosine schedule), each with ``--train-seeds`` training seeds; every cell is the mean ± standard error over
them (the drift cells also give the chip-to-chip std), and the noise midpoints' ViT / LeNet-5 ratio is
paired by seed. Prints markdown tables, writes benchmarks/results/vit_digits.png and the per-seed values to
vit_digits.json. ``python benchmarks/vit_digits.py [--quick] [--train-seeds N]``
"""

from __future__ import annotations

import numpy as np
import torch

import studylib
from xbarsim import ChipConfig
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig, accuracy
from xbarsim.sweeps.metrics import NoiseCurve
from xbarsim.sweeps.noise_kinds import ActivationNoise, WeightNoiseKind

TIMES = [("0 (programming)", 0.0), *studylib.DRIFT]
COMPENSATION = {"none": "no compensation", "global": "global compensation"}
MODELS = {
    "LeNet-5": (lambda: zoo.build("lenet5", image_size=8), 3e-3),
    "ViT": (lambda: zoo.build("vit", image_size=8, patch_size=2, dim=64, depth=2, heads=4, mlp_dim=128), 1e-3),
}


def drift_part(model: torch.nn.Module, split: data.DataSplit, chips: int) -> dict[str, NoiseCurve]:
    """Accuracy at each time of ``TIMES`` on the pcm preset, per compensation mode."""
    times = [t for _, t in TIMES]
    pcm = ChipConfig.preset("pcm")
    return {mode: studylib.drift_curve(model, pcm.with_values({"drift_compensation": mode}), times, chips, split) for mode in COMPENSATION}


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "vit_digits.png")
    studylib.add_chips_option(parser, full=5, quick=2, per="cell and training seed")
    args, clock, chips = studylib.begin(parser, argv)
    env = studylib.environment()
    seeds = studylib.training_seeds(parser, args)
    epochs, repeats = (8, 3) if args.quick else (40, 10)
    noises = {"activation": (np.logspace(-2, 2, 9 if args.quick else 17), ActivationNoise()),
              "weight": (np.logspace(-2.5, 0.5, 7 if args.quick else 13), WeightNoiseKind())}  # fmt: skip
    split = data.digits(args.seed)
    drift: dict[str, list[dict[str, NoiseCurve]]] = {name: [] for name in MODELS}
    arms = {kind: {name: studylib.Arm() for name in MODELS} for kind in noises}
    with studylib.progress(3 * len(MODELS) * len(seeds), "vit vs lenet5") as bar:
        for seed in seeds:
            for name, (build, lr) in MODELS.items():
                model = studylib.trained(build, split, TrainConfig(epochs=epochs, lr=lr, seed=seed))
                float_acc = accuracy(model, split.x_test, split.y_test)
                clock.log(f"{name}, training seed {seed}: float32 test accuracy {100 * float_acc:.1f}%")
                bar.update()
                drift[name].append(drift_part(model, split, chips))
                clock.log(f"{name}, training seed {seed}: 10 years {', '.join(f'{m} {100 * c.mean[-1]:.1f}%' for m, c in drift[name][-1].items())}")
                bar.update()
                for kind, (levels, noise) in noises.items():
                    arms[kind][name].add(seed, studylib.curve_under(model, split, levels, repeats, noise, args.seed), float_acc)
                clock.log(f"{name}, training seed {seed}: midpoints " + ", ".join(
                    f"{kind} {studylib.summary_cell(studylib.summary(arms[kind][name].midpoints()[-1:]))}" for kind in noises))  # fmt: skip
                bar.update()

    reference = next(iter(MODELS))
    noise_results = {kind: studylib.compare(arms[kind], reference) for kind in noises}
    floats = {name: studylib.values_summary(seeds, arms["activation"][name].clean) for name in MODELS}
    params = {name: sum(p.numel() for p in build().parameters()) for name, (build, _) in MODELS.items()}
    print(f"Digits ({len(split.y_train)} train / {len(split.y_test)} test); {epochs} epochs; training seeds {', '.join(map(str, seeds))}, "
          f"data split and noise seed {args.seed}; {chips} chips per cell and training seed (programming seeds 0..{chips - 1}); "
          f"parameters: {', '.join(f'{n} {p:,}' for n, p in params.items())}. Cells: mean over training seeds ± its standard error "
          f"(of each seed's mean over chips), and the chip-to-chip std.\n")  # fmt: skip
    print("#### Accuracy on the pcm preset after programming\n")
    headers = ["time after programming", *(f"{name}, {COMPENSATION[mode]}" for name in MODELS for mode in COMPENSATION)]
    rows = [[label, *(studylib.chips_cell([d[mode].accuracies[i] for d in drift[name]]) for name in MODELS for mode in COMPENSATION)]
            for i, (label, _) in enumerate(TIMES)]  # fmt: skip
    print(studylib.markdown_table(headers, rows))
    day = [label for label, _ in TIMES].index("1 day")
    print("\nLoss from programming (points; each training seed's mean over chips) to 1 day / to 10 years: " + "; ".join(
        f"{name}, {COMPENSATION[mode]}: " + " / ".join(
            f"{studylib.summary_cell(loss, 1, percent=True)} ({studylib.per_seed_cell(loss, 1, percent=True)})"
            for loss in (studylib.values_summary(seeds, [d[mode].mean[0] - d[mode].mean[i] for d in drift[name]]) for i in (day, -1)))
        for name in MODELS for mode in COMPENSATION) + ".")  # fmt: skip
    print(f"\n#### Float networks under noise ({repeats} repeats per level)\n")
    rows = [[name, kind, studylib.summary_cell(floats[name], 1, percent=True) + "%", *studylib.comparison_cells(noise_results[kind][name])]
            for kind in noises for name in MODELS]  # fmt: skip
    print(studylib.markdown_table(["model", "noise", "float32 accuracy", "midpoint", "per seed",
                                   f"level at -{100 * studylib.DROP:g} points from {reference}'s float accuracy",
                                   f"midpoint / {reference}'s (per seed)"], rows))  # fmt: skip
    panels = {f"{name} on pcm: drift": {COMPENSATION[m]: studylib.arm_of(seeds, [NoiseCurve(np.maximum(d[m].sigmas, 0.1), d[m].accuracies)
                                                                                for d in drift[name]]) for m in COMPENSATION}
              for name in MODELS}  # fmt: skip
    panels.update({f"{kind} noise": arms[kind] for kind in noises})
    xlabels = {**{f"{name} on pcm: drift": "seconds after programming (0 plotted at 0.1)" for name in MODELS},
               "activation noise": "sigma", "weight noise": "eta"}  # fmt: skip
    path = studylib.plot_panels(panels, args.plot, xlabels, "ViT against LeNet-5 on digits", fit=False, columns=2)
    print(f"\n{studylib.environment_line(env, clock.seconds())}")
    results = {"drift": {name: {COMPENSATION[m]: [{"seed": s, "times": d[m].sigmas, "accuracies": d[m].accuracies} for s, d in zip(seeds, drift[name])]
                                for m in COMPENSATION} for name in MODELS},
               "float_accuracy": floats, "noise": noise_results}  # fmt: skip
    record = studylib.write_json(args.json, "vit_digits", args, env, clock.seconds(), results)
    print(f"plot: {path}; per-seed results: {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
