"""Study: deep noise injection (Qin & Vucinic) for vanilla RNN, LSTM and GRU classifiers.

Two sequence tasks:
- digits read row by row: 8 steps of 8 pixels (scikit-learn digits, 10 classes);
- delayed recall (synthetic, harder): 12 steps of 8 features of N(0, 1) distractors; at one
  random step among the first four a cue ``3 * one_hot(class)`` is added, and the class (one of
  8) must be reported after the last step, 8 to 11 steps later. 3000 sequences, 20% for test.
Each cell (2 layers, 64 hidden) is trained plain and with deep noise injection (Gaussian noise on
every gate pre-activation of every step, sigma ``--train-sigma``), then tested under gate noise
over a log grid of sigma. The paper reports flatter curves, and sometimes better clean accuracy.
Every cell is trained with ``--train-seeds`` seeds; clean accuracies, midpoints and the DNI / plain
ratio are the mean ± standard error over them. Prints a markdown table, writes
benchmarks/results/dni_sequences.png and the per-seed values to dni_sequences.json.
``python benchmarks/dni_sequences.py [--quick] [--train-seeds N] [--relative]``
"""

from __future__ import annotations

import numpy as np
import torch

import studylib
from xbarsim.models import data, zoo
from xbarsim.models.data import DataSplit
from xbarsim.models.training import TrainConfig
from xbarsim.sweeps.noise_kinds import GateNoiseKind

CELLS = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}


def delayed_recall(n: int = 3000, steps: int = 12, features: int = 8, classes: int = 8, seed: int = 0) -> DataSplit:
    """The delayed-recall task above: x (n, steps, features) float32, labels int64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, steps, features))
    y = rng.integers(0, classes, n)
    cue_step = rng.integers(0, 4, n)
    x[np.arange(n), cue_step, y] += 3.0
    test = rng.permutation(n) < n // 5
    tx, ty = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    return DataSplit("delayed recall", tx[~test], ty[~test], tx[test], ty[test])


def row_by_row_digits(seed: int) -> DataSplit:
    """Digits as sequences: (n, 8 rows, 8 pixels)."""
    split = data.digits(seed)
    return DataSplit("digits row by row", split.x_train.squeeze(1), split.y_train, split.x_test.squeeze(1), split.y_test)


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "dni_sequences.png")
    parser.add_argument("--train-sigma", type=float, default=0.3, help="gate-noise sigma in training (default 0.3)")
    parser.add_argument("--relative", action="store_true", help="gate noise relative to each pre-activation's std (train and test)")
    parser.add_argument("--cells", nargs="+", choices=list(CELLS), default=list(CELLS))
    args = parser.parse_args(argv)
    studylib.reproducible(args.seed, args.threads)
    env = studylib.environment()
    clock = studylib.Clock()
    seeds = studylib.training_seeds(parser, args)
    sigmas = np.logspace(-2, 1, 7 if args.quick else 13)
    middle = len(sigmas) // 2
    repeats = 3 if args.quick else 10
    epochs = 8 if args.quick else 30
    noise = GateNoiseKind(relative=args.relative)
    tasks = {"digits row by row": row_by_row_digits(args.seed), "delayed recall": delayed_recall(seed=args.seed)}
    rows, panels, results = [], {}, {}
    with studylib.progress(len(tasks) * len(args.cells) * 2 * len(seeds), "deep noise injection") as bar:
        for task, split in tasks.items():
            for cell in args.cells:
                build = lambda cell=cell, split=split: zoo.build(CELLS[cell], input_size=split.x_train.shape[-1], num_classes=split.num_classes)  # noqa: E731
                arms = {"plain": studylib.Arm(), "DNI": studylib.Arm()}
                for seed in seeds:
                    base = TrainConfig(epochs=epochs, lr=3e-3, seed=seed)
                    dni = studylib.with_options(base, gate_noise_sigma=args.train_sigma, gate_noise_relative=args.relative)
                    for training, cfg in (("plain", base), ("DNI", dni)):
                        arms[training].add(seed, *studylib.measured(studylib.trained(build, split, cfg), split, sigmas, repeats, noise, args.seed))
                        clock.log(f"{task}, {cell}, {training}, training seed {seed}: clean {100 * arms[training].clean[-1]:.1f}%, midpoint "
                                  f"{studylib.summary_cell(studylib.summary(arms[training].midpoints()[-1:]))}")  # fmt: skip
                        bar.update()
                stats = results.setdefault(task, {})[cell] = studylib.compare(arms, "plain")
                gain = studylib.values_summary(seeds, np.subtract(arms["DNI"].clean, arms["plain"].clean))
                stats["DNI"]["clean_accuracy_change"] = gain
                for training, arm in arms.items():
                    clean = stats[training]["clean_accuracy"] = studylib.values_summary(arm.seeds, arm.clean)
                    at_middle = stats[training]["accuracy_at_middle_level"] = studylib.values_summary(arm.seeds, [c.mean[middle] for c in arm.curves])
                    change = "" if training == "plain" else f"{studylib.summary_cell(gain, 1, percent=True)} ({studylib.per_seed_cell(gain, 1, percent=True)})"
                    rows.append([task, cell, training, studylib.summary_cell(clean, 1, percent=True) + "%", change,
                                 studylib.summary_cell(at_middle, 1, percent=True) + "%", *studylib.comparison_cells(stats[training])])  # fmt: skip
                panels[f"{task}: {cell}"] = arms
    kind = "relative to each pre-activation's std" if args.relative else "absolute"
    print(f"Gate noise ({kind}) on every gate pre-activation of every step, sigma logspace(-2, 1, {len(sigmas)}), {repeats} "
          f"repeats; 2 layers x 64 hidden; {epochs} epochs, Adam lr 0.003; DNI training sigma {args.train_sigma}; training seeds "
          f"{', '.join(map(str, seeds))}, data and noise seed {args.seed}. Cells: mean ± standard error over training seeds; "
          f"sigma at -{100 * studylib.DROP:g} points: where the curve is {100 * studylib.DROP:g} points below the plain network's "
          f"clean accuracy of the same seed.\n")  # fmt: skip
    print(studylib.markdown_table(["task", "cell", "training", "clean accuracy", "DNI - plain, clean (per seed)",
                                   f"accuracy at sigma={sigmas[middle]:.3g}", "midpoint sigma", "per seed",
                                   f"sigma at -{100 * studylib.DROP:g} points", "DNI / plain midpoint (per seed)"], rows))  # fmt: skip
    path = studylib.plot_panels(panels, args.plot, f"gate-noise sigma ({kind})", "Deep noise injection")
    print(f"\n{studylib.environment_line(env, clock.seconds())}")
    record = studylib.write_json(args.json, "dni_sequences", args, env, clock.seconds(), results)
    print(f"plot: {path}; per-seed results: {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
