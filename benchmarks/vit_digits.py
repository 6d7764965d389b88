"""Study: a vision transformer against LeNet-5 on a PCM chip (scikit-learn digits).

1. Accuracy on the ``pcm`` preset from programming (t = 0) to 10 years, without and with global drift
   compensation, on ``--chips`` chips (programming seeds) per cell.
2. Robustness of the float networks: the midpoint of the accuracy curve under additive activation noise
   after every module (sigma ``logspace(-2, 2, 17)``) and under Noisy Machines' weight noise (eta
   ``logspace(-2.5, 0.5, 13)``), 10 repeats per level.

The ViT (``zoo.vit``): patches of 2x2 pixels (16 tokens and a class token), 2 pre-norm encoder layers of
width 64 with 4 heads (``nn.TransformerEncoder``: every attention projection and MLP layer on tiles; the
score and context products digital), MLP 128. Both trained 40 epochs (Adam, lr 0.003 LeNet-5, 0.001 ViT,
cosine schedule), seed 0. Prints markdown tables and writes
benchmarks/results/vit_digits.png. ``python benchmarks/vit_digits.py [--quick]``
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
    studylib.add_chips_option(parser, full=5, quick=2)
    args, clock, chips = studylib.begin(parser, argv)
    epochs, repeats = (8, 3) if args.quick else (40, 10)
    activation_levels = np.logspace(-2, 2, 9 if args.quick else 17)
    weight_levels = np.logspace(-2.5, 0.5, 7 if args.quick else 13)
    split = data.digits(args.seed)
    trained, drift, float_acc, midpoints, curves = {}, {}, {}, {}, {}
    with studylib.progress(3 * len(MODELS), "vit vs lenet5") as bar:
        for name, (build, lr) in MODELS.items():
            trained[name] = studylib.trained(build, split, TrainConfig(epochs=epochs, lr=lr, seed=args.seed))
            float_acc[name] = accuracy(trained[name], split.x_test, split.y_test)
            clock.log(f"{name}: float32 test accuracy {100 * float_acc[name]:.1f}%")
            bar.update()
            drift[name] = drift_part(trained[name], split, chips)
            clock.log(f"{name}: 10 years {', '.join(f'{m} {100 * c.mean[-1]:.1f}%' for m, c in drift[name].items())}")
            bar.update()
            curves[name] = {kind: studylib.curve_under(trained[name], split, levels, repeats, noise, args.seed)
                            for kind, (levels, noise) in {"activation": (activation_levels, ActivationNoise()),
                                                          "weight": (weight_levels, WeightNoiseKind())}.items()}  # fmt: skip
            midpoints[name] = {kind: studylib.midpoint_cell(curve) for kind, curve in curves[name].items()}
            clock.log(f"{name}: midpoints {midpoints[name]}")
            bar.update()

    params = {name: sum(p.numel() for p in model.parameters()) for name, model in trained.items()}
    print(f"Digits ({len(split.y_train)} train / {len(split.y_test)} test); {epochs} epochs, seed {args.seed}; "
          f"{chips} chips per cell (programming seeds 0..{chips - 1}), mean ± std over chips; "
          f"parameters: {', '.join(f'{n} {p:,}' for n, p in params.items())}.\n")  # fmt: skip
    print("#### Accuracy on the pcm preset after programming\n")
    headers = ["time after programming", *(f"{name}, {COMPENSATION[mode]}" for name in MODELS for mode in COMPENSATION)]
    rows = [[label, *(studylib.mean_std_cell(drift[name][mode].accuracies[i]) for name in MODELS for mode in COMPENSATION)]
            for i, (label, _) in enumerate(TIMES)]  # fmt: skip
    print(studylib.markdown_table(headers, rows))
    print(f"\n#### Float networks under noise ({repeats} repeats per level)\n")
    print(studylib.markdown_table(["model", "float32 accuracy", "midpoint sigma (activation noise)", "midpoint eta (weight noise)"],
                                  [[name, f"{100 * float_acc[name]:.1f}%", midpoints[name]["activation"], midpoints[name]["weight"]]
                                   for name in MODELS]))  # fmt: skip
    panels = {f"{name} on pcm: drift": {COMPENSATION[m]: c for m, c in drift[name].items()} for name in MODELS}
    panels["activation noise"] = {name: curves[name]["activation"] for name in MODELS}
    panels["weight noise"] = {name: curves[name]["weight"] for name in MODELS}
    xlabels = {**{f"{name} on pcm: drift": "seconds after programming (0 plotted at 0.1)" for name in MODELS},
               "activation noise": "sigma", "weight noise": "eta"}  # fmt: skip
    for panel in (f"{name} on pcm: drift" for name in MODELS):
        panels[panel] = {label: NoiseCurve(np.maximum(c.sigmas, 0.1), c.accuracies) for label, c in panels[panel].items()}
    path = studylib.plot_panels(panels, args.plot, xlabels, "ViT against LeNet-5 on digits", fit=False, columns=2)
    print(f"\nplot: {path}; run time {clock.seconds():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
