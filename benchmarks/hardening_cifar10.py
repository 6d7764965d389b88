"""Study: the hardening paper's midpoint table on CIFAR-10 (LeNet-5, VGG-11, ResNet-18).

For each network: the midpoint noise level under additive Gaussian activation noise after every
module, for plain training, noisy training (one network per sigma, trained and tested at it) and
8-bit QAT (dynamic and constant activation scaling), the same trainings as
``robustness_digits.py``. The paper reports (plain -> noisy): LeNet-5 0.286 -> 2.59,
VGG-11 0.154 -> 2.957, ResNet-18 0.494 -> 3.023.

Needs the CIFAR-10 python batches (``cifar-10-batches-py``) on disk; nothing is downloaded:
    python benchmarks/hardening_cifar10.py --data cifar10:/path/to/cifar-10-batches-py --estimate
prints the time it expects (from timed training steps and noisy evaluations), and without
``--estimate`` runs it. ``--data synthetic`` uses random CIFAR-shaped data (the test's path).
Training is on the CPU with torch; there is no data augmentation.
"""

from __future__ import annotations

import time

import numpy as np
import torch

import studylib
from xbarsim.models import data, zoo
from xbarsim.models.data import DataSplit
from xbarsim.models.training import TrainConfig
from xbarsim.sweeps.metrics import noise_curve

PAPER = {"LeNet-5": (0.286, 2.59), "VGG-11": (0.154, 2.957), "ResNet-18": (0.494, 3.023)}
QAT_SCALES = ("dynamic", "const:4")


def networks(width: float, channels: int, size: int, classes: int) -> dict[str, callable]:
    """The paper's three networks; ``width`` scales VGG-11's and ResNet-18's channels."""
    return {
        "LeNet-5": lambda: zoo.build("lenet5", in_channels=channels, image_size=size, num_classes=classes),
        "VGG-11": lambda: zoo.build("vgg11", in_channels=channels, image_size=size, num_classes=classes, width=width),
        "ResNet-18": lambda: zoo.build("resnet18", in_channels=channels, num_classes=classes, width=max(1, int(64 * width))),
    }


def load(spec: str, seed: int) -> DataSplit:
    if spec == "synthetic":
        return data.synthetic(n=400, shape=(3, 32, 32), seed=seed)
    if not spec.startswith("cifar10:"):
        raise SystemExit(f"--data: use cifar10:PATH or synthetic, got {spec!r}")
    return data.load(spec, seed)


def estimate_seconds(build, split: DataSplit, base: TrainConfig, trainings: int, levels: int, repeats: int) -> float:
    """The run time of one network's trainings and noise curves, from a timed handful of
    training steps and one noisy pass over a test batch, scaled to the full run."""
    steps = 3
    batch = slice(0, steps * base.batch_size)
    probe = DataSplit(split.name, split.x_train[batch], split.y_train[batch], split.x_test[:256], split.y_test[:256])
    start = time.perf_counter()
    studylib.trained(build, probe, studylib.with_options(base, epochs=1, noise_sigma=0.1))
    per_step = (time.perf_counter() - start) / -(-len(probe.y_train) // base.batch_size)
    model = build()
    start = time.perf_counter()
    noise_curve(model, probe.x_test, probe.y_test, [0.1], 1)
    per_sample = (time.perf_counter() - start) / len(probe.y_test)
    train_steps = trainings * base.epochs * -(-len(split.y_train) // base.batch_size)
    evaluations = (levels + levels + len(QAT_SCALES) * levels) * repeats * len(split.y_test)
    return train_steps * per_step + evaluations * per_sample


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "hardening_cifar10.png")
    parser.add_argument("--data", required=True, help="cifar10:PATH (the cifar-10-batches-py folder) or synthetic")
    parser.add_argument("--epochs", type=int, help="training epochs (default 30; 2 with --quick)")
    parser.add_argument("--width", type=float, default=1.0, help="channel scale of VGG-11 and ResNet-18 (default 1, the paper's)")
    parser.add_argument("--models", nargs="+", choices=list(PAPER), default=list(PAPER))
    parser.add_argument("--estimate", action="store_true", help="print the expected run time and stop")
    args = parser.parse_args(argv)
    studylib.reproducible(args.seed, args.threads)
    clock = studylib.Clock()
    env = studylib.environment()
    seeds = studylib.training_seeds(parser, args)
    sigmas = np.logspace(-2, 2, 5 if args.quick else 17)
    repeats = 2 if args.quick else 10
    bases = [TrainConfig(epochs=args.epochs or (2 if args.quick else 30), lr=1e-3, batch_size=128, seed=seed) for seed in seeds]
    base = bases[0]
    split = load(args.data, args.seed)
    channels, size = split.input_shape[0], split.input_shape[1]
    builds = {name: build for name, build in networks(args.width, channels, size, split.num_classes).items() if name in args.models}
    trainings = 1 + len(sigmas) + len(QAT_SCALES)
    estimate = len(seeds) * sum(estimate_seconds(build, split, base, trainings, len(sigmas), repeats) for build in builds.values())
    print(f"{split.name}: {len(split.y_train)} train / {len(split.y_test)} test; {trainings} trainings of {base.epochs} epochs "
          f"per network and training seed ({len(seeds)} seeds); estimated run time {estimate / 3600:.2f} h on this machine "
          f"({torch.get_num_threads()} threads)")  # fmt: skip
    if args.estimate:
        return 0
    studylib.reproducible(args.seed, args.threads)  # the estimate drew from the global generators
    with studylib.progress(len(builds) * (2 + len(QAT_SCALES)) * len(seeds), "hardening") as bar:
        results, panels, rows = studylib.hardening_study(builds, split, sigmas, repeats, bases, args.seed, QAT_SCALES, clock, bar)
    for row in rows:
        row.append({"plain": PAPER[row[0]][0], "noisy training": PAPER[row[0]][1]}.get(row[1], "-"))
    print(f"\nAdditive activation noise after every module, sigmas logspace(-2, 2, {len(sigmas)}), {repeats} repeats; "
          f"{base.epochs} epochs, Adam lr {base.lr}, batch {base.batch_size}, width {args.width}; training seeds "
          f"{', '.join(map(str, seeds))}, data and noise seed {args.seed}. Cells: mean ± standard error over training seeds.\n")  # fmt: skip
    print(studylib.markdown_table(["model", "training", f"accuracy at sigma={sigmas[0]:g}", "midpoint noise level", "per seed",
                                   f"sigma at -{100 * studylib.DROP:g} points", "midpoint / plain's (per seed)", "paper"], rows))  # fmt: skip
    path = studylib.plot_panels(panels, args.plot, "activation noise sigma (after every module)", f"{split.name}: hardening")
    print(f"\n{studylib.environment_line(env, clock.seconds())} Estimated {estimate:.0f} s.")
    record = studylib.write_json(args.json, "hardening_cifar10", args, env, clock.seconds(), results)
    print(f"plot: {path}; per-seed results: {record}")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
