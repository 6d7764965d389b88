"""Study: which training keeps a network accurate under activation noise? (scikit-learn digits)

For the MLP and the LeNet-5-style CNN: the midpoint noise level (DESIGN.md §4) of
- plain training, evaluated with noise after every module at each sigma;
- noisy training, one network per sigma trained with that sigma and tested at it (the seed
  papers' protocol);
- 8-bit QAT with dynamic vs constant (const:1 and const:4) activation scaling, trained clean.
Prints a markdown table and writes the curves to benchmarks/results/robustness_digits.png.
Runs in a few minutes on 2 cores: ``python benchmarks/robustness_digits.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from xbarsim.models import data, zoo
from xbarsim.models.quant import QATConfig
from xbarsim.models.training import TrainConfig, train
from xbarsim.sweeps.metrics import NoiseCurve, NoMidpointError, noise_curve
from xbarsim.sweeps.plots import plot_noise_curves

MODELS = {"MLP": lambda: zoo.build("mlp"), "LeNet-5": lambda: zoo.build("lenet5", image_size=8)}


def _trained(build, split, cfg: TrainConfig):
    torch.manual_seed(cfg.seed)
    model = build()
    train(model, split, cfg, progress=False)
    return model


def noisy_training_curve(build, split, sigmas, repeats, base: TrainConfig) -> NoiseCurve:
    """One network per sigma, trained and tested with that sigma after every module."""
    rows = []
    for sigma in sigmas:
        model = _trained(build, split, TrainConfig(**{**base.__dict__, "noise_sigma": float(sigma)}))
        rows.append(noise_curve(model, split.x_test, split.y_test, [sigma], repeats).accuracies[0])
    return NoiseCurve(np.asarray(sigmas, float), np.stack(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="9 sigmas, 3 repeats, 15 epochs (a smoke run)")
    parser.add_argument("--plot", default="benchmarks/results/robustness_digits.png")
    args = parser.parse_args()
    sigmas = np.logspace(-2, 2, 9 if args.quick else 17)
    repeats = 3 if args.quick else 10
    base = TrainConfig(epochs=15 if args.quick else 40, lr=3e-3, seed=0)
    split = data.digits()
    results, curves = [], {}
    start = time.time()
    for name, build in MODELS.items():
        variants = {
            "plain": lambda: noise_curve(_trained(build, split, base), split.x_test, split.y_test, sigmas, repeats),
            "noisy training": lambda: noisy_training_curve(build, split, sigmas, repeats, base),
            "QAT 8-bit, dynamic scale": lambda: noise_curve(
                _trained(build, split, TrainConfig(**{**base.__dict__, "qat": QATConfig(8, True, "dynamic")})),
                split.x_test, split.y_test, sigmas, repeats),
            **{f"QAT 8-bit, constant scale ({c:g})": lambda c=c: noise_curve(
                _trained(build, split, TrainConfig(**{**base.__dict__, "qat": QATConfig(8, True, f"const:{c:g}")})),
                split.x_test, split.y_test, sigmas, repeats) for c in (1.0, 4.0)},
        }  # fmt: skip
        for variant, run in variants.items():
            curve = run()
            curves[f"{name}, {variant}"] = curve
            try:
                fit = curve.midpoint()
                mid = f"{fit.sigma_mid:.3f} ± {fit.sigma_mid_err:.3f}"
            except NoMidpointError as exc:
                mid = f"none ({exc})"
            results.append((name, variant, curve.mean[0], mid))
            print(f"[{time.time() - start:6.0f}s] {name:8} {variant:32} clean {100 * curve.mean[0]:5.1f}%  midpoint {mid}", file=sys.stderr)
    print(f"Digits (1438 train / 359 test), noise after every module (additive), sigmas logspace(-2, 2, {len(sigmas)}), "
          f"{repeats} repeats; {base.epochs} epochs, Adam lr {base.lr}, seed {base.seed}.\n")  # fmt: skip
    print("| model | training | accuracy at sigma=0.01 | midpoint noise level |")
    print("|---|---|---|---|")
    for name, variant, clean, mid in results:
        print(f"| {name} | {variant} | {100 * clean:.1f}% | {mid} |")
    path = plot_noise_curves(curves, args.plot, "digits: accuracy under activation noise")
    print(f"\nplot: {path} ({time.time() - start:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
