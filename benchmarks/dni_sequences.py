"""Study: deep noise injection (Qin & Vucinic) for vanilla RNN, LSTM and GRU classifiers.

Two sequence tasks:
- digits read row by row: 8 steps of 8 pixels (scikit-learn digits, 10 classes);
- delayed recall (synthetic, harder): 12 steps of 8 features of N(0, 1) distractors; at one
  random step among the first four a cue ``3 * one_hot(class)`` is added, and the class (one of
  8) must be reported after the last step, 8 to 11 steps later. 3000 sequences, 20% for test.
Each cell (2 layers, 64 hidden) is trained plain and with deep noise injection (Gaussian noise on
every gate pre-activation of every step, sigma ``--train-sigma``), then tested under gate noise
over a log grid of sigma. The paper reports flatter curves, and sometimes better clean accuracy.
Prints a markdown table and writes benchmarks/results/dni_sequences.png.
``python benchmarks/dni_sequences.py [--quick] [--relative]``
"""

from __future__ import annotations

import numpy as np
import torch

import studylib
from xbarsim.models import data, zoo
from xbarsim.models.data import DataSplit
from xbarsim.models.training import TrainConfig, accuracy
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
    clock = studylib.Clock()
    sigmas = np.logspace(-2, 1, 7 if args.quick else 13)
    repeats = 3 if args.quick else 10
    base = TrainConfig(epochs=8 if args.quick else 30, lr=3e-3, seed=args.seed)
    dni = studylib.with_options(base, gate_noise_sigma=args.train_sigma, gate_noise_relative=args.relative)
    noise = GateNoiseKind(relative=args.relative)
    tasks = {"digits row by row": row_by_row_digits(args.seed), "delayed recall": delayed_recall(seed=args.seed)}
    rows, panels = [], {}
    with studylib.progress(len(tasks) * len(args.cells) * 2, "deep noise injection") as bar:
        for task, split in tasks.items():
            for cell in args.cells:
                build = lambda cell=cell, split=split: zoo.build(CELLS[cell], input_size=split.x_train.shape[-1], num_classes=split.num_classes)  # noqa: E731
                curves = {}
                for training, cfg in (("plain", base), ("DNI", dni)):
                    model = studylib.trained(build, split, cfg)
                    curves[training] = studylib.curve_under(model, split, sigmas, repeats, noise, args.seed)
                    clean = accuracy(model, split.x_test, split.y_test)
                    rows.append([task, cell, training, f"{100 * clean:.1f}%", f"{100 * curves[training].mean[len(sigmas) // 2]:.1f}%",
                                 studylib.midpoint_cell(curves[training])])  # fmt: skip
                    clock.log(f"{task}, {cell}, {training}: clean {100 * clean:.1f}%, midpoint {rows[-1][-1]}")
                    bar.update()
                rows[-1].append(studylib.midpoint_ratio(curves["DNI"], curves["plain"]))
                rows[-2].append("")
                panels[f"{task}: {cell}"] = curves
    kind = "relative to each pre-activation's std" if args.relative else "absolute"
    print(f"Gate noise ({kind}) on every gate pre-activation of every step, sigma logspace(-2, 1, {len(sigmas)}), {repeats} "
          f"repeats; 2 layers x 64 hidden; {base.epochs} epochs, Adam lr {base.lr}, seed {args.seed}; DNI training sigma "
          f"{args.train_sigma}.\n")  # fmt: skip
    print(studylib.markdown_table(["task", "cell", "training", "clean accuracy", f"accuracy at sigma={sigmas[len(sigmas) // 2]:.3g}",
                                   "midpoint sigma", "DNI / plain midpoint"], rows))  # fmt: skip
    path = studylib.plot_panels(panels, args.plot, f"gate-noise sigma ({kind})", "Deep noise injection")
    print(f"\nplot: {path}; run time {clock.seconds():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
