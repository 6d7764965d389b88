"""Study: which training keeps a network accurate under activation noise? (scikit-learn digits)

For the MLP and the LeNet-5-style CNN: the midpoint noise level of
- plain training, evaluated with noise after every module at each sigma;
- noisy training, one network per sigma trained with that sigma and tested at it (the seed
  papers' protocol);
- 8-bit QAT with dynamic vs constant (const:1 and const:4) activation scaling, trained clean.
Prints a markdown table and writes the curves to benchmarks/results/robustness_digits.png.
Runs in a few minutes on 2 cores: ``python benchmarks/robustness_digits.py [--quick]``.
"""

from __future__ import annotations

import numpy as np

import studylib
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig

MODELS = {"MLP": lambda: zoo.build("mlp"), "LeNet-5": lambda: zoo.build("lenet5", image_size=8)}


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "robustness_digits.png")
    args = parser.parse_args(argv)
    studylib.reproducible(args.seed, args.threads)
    clock = studylib.Clock()
    sigmas = np.logspace(-2, 2, 9 if args.quick else 17)
    repeats = 3 if args.quick else 10
    base = TrainConfig(epochs=15 if args.quick else 40, lr=3e-3, seed=args.seed)
    split = data.digits(args.seed)
    rows, panels = [], {}
    with studylib.progress(len(MODELS) * 5, "robustness") as bar:
        for name, build in MODELS.items():
            variants = studylib.hardening_variants(build, split, sigmas, repeats, base, args.seed, ("dynamic", "const:1", "const:4"))
            panels[name] = {}
            for variant, run in variants.items():
                curve = panels[name][variant] = run()
                rows.append((name, variant, f"{100 * curve.mean[0]:.1f}%", studylib.midpoint_cell(curve)))
                clock.log(f"{name} {variant}: clean {rows[-1][2]}, midpoint {rows[-1][3]}")
                bar.update()
    print(f"Digits ({len(split.y_train)} train / {len(split.y_test)} test), noise after every module (additive), sigmas "
          f"logspace(-2, 2, {len(sigmas)}), {repeats} repeats; {base.epochs} epochs, Adam lr {base.lr}, seed {args.seed}.\n")  # fmt: skip
    print(studylib.markdown_table(["model", "training", f"accuracy at sigma={sigmas[0]:g}", "midpoint noise level"], rows))
    path = studylib.plot_panels(panels, args.plot, "activation noise sigma (after every module)", "digits: accuracy under activation noise")
    print(f"\nplot: {path}; run time {clock.seconds():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
