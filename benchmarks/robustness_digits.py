"""Study: which training keeps a network accurate under activation noise? (scikit-learn digits)

For the MLP and the LeNet-5-style CNN: the midpoint noise level of
- plain training, evaluated with noise after every module at each sigma;
- noisy training, one network per sigma trained with that sigma and tested at it (the seed
  papers' protocol);
- 8-bit QAT with dynamic vs constant (const:1 and const:4) activation scaling, trained clean.
Each arm is trained with ``--train-seeds`` seeds; midpoints and their ratios to plain training are
the mean ± standard error over them. Prints a markdown table, writes the curves to
benchmarks/results/robustness_digits.png and the per-seed values to robustness_digits.json.
``python benchmarks/robustness_digits.py [--quick] [--train-seeds N]``
"""

from __future__ import annotations

import numpy as np

import studylib
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig

MODELS = {"MLP": lambda: zoo.build("mlp"), "LeNet-5": lambda: zoo.build("lenet5", image_size=8)}
SCALES = ("dynamic", "const:1", "const:4")


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "robustness_digits.png")
    args = parser.parse_args(argv)
    studylib.reproducible(args.seed, args.threads)
    env = studylib.environment()
    clock = studylib.Clock()
    seeds = studylib.training_seeds(parser, args)
    sigmas = np.logspace(-2, 2, 9 if args.quick else 17)
    repeats = 3 if args.quick else 10
    epochs = 15 if args.quick else 40
    split = data.digits(args.seed)
    bases = [TrainConfig(epochs=epochs, lr=3e-3, seed=seed) for seed in seeds]
    with studylib.progress(len(MODELS) * (2 + len(SCALES)) * len(seeds), "robustness") as bar:
        results, panels, rows = studylib.hardening_study(MODELS, split, sigmas, repeats, bases, args.seed, SCALES, clock, bar)
    print(f"Digits ({len(split.y_train)} train / {len(split.y_test)} test), noise after every module (additive), sigmas "
          f"logspace(-2, 2, {len(sigmas)}), {repeats} repeats; {epochs} epochs, Adam lr 0.003; training seeds "
          f"{', '.join(map(str, seeds))}, data split and noise seed {args.seed}. Cells: mean ± standard error over training "
          f"seeds; sigma at -{100 * studylib.DROP:g} points: where the curve is {100 * studylib.DROP:g} points below the plain "
          f"network's float accuracy of the same seed.\n")  # fmt: skip
    print(studylib.markdown_table(["model", "training", f"accuracy at sigma={sigmas[0]:g}", "midpoint noise level", "per seed",
                                   f"sigma at -{100 * studylib.DROP:g} points", "midpoint / plain's (per seed)"], rows))  # fmt: skip
    path = studylib.plot_panels(panels, args.plot, "activation noise sigma (after every module)", "digits: accuracy under activation noise")
    print(f"\n{studylib.environment_line(env, clock.seconds())}")
    record = studylib.write_json(args.json, "robustness_digits", args, env, clock.seconds(), results)
    print(f"plot: {path}; per-seed results: {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
