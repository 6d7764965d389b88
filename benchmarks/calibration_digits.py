"""Study: what calibration wins back on a PCM chip (scikit-learn digits, LeNet-5).

1. Accuracy over drift time, 1 s to 10 years, without and with global drift compensation.
2. 4/6/8-bit ADCs: the pcm preset's fixed bound (10) against ranges calibrated from data
   (99.99th percentile, 512 training images).
3. A noisy chip (programming noise x4) before and after denoising blocks (width 1/8 of the
   layer's channels, at most 3, until within 2% of float accuracy), with their parameter overhead.
Five chips (programming seeds) per point. Prints markdown tables; a few minutes on 2 cores:
``python benchmarks/calibration_digits.py [--chips 5]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from xbarsim import ChipConfig, map_model
from xbarsim.calibration.denoise import denoise
from xbarsim.calibration.ranges import calibrate_ranges
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig, accuracy, train

DRIFT = [("1 s", 1.0), ("1 min", 60.0), ("1 hour", 3600.0), ("1 day", 86400.0), ("1 month", 30 * 86400.0),
         ("1 year", 365.25 * 86400.0), ("10 years", 3652.5 * 86400.0)]  # fmt: skip


def _cell(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=5)
    args = parser.parse_args()
    start = time.time()
    split = data.digits()
    torch.manual_seed(0)
    model = zoo.build("lenet5", image_size=8)
    train(model, split, TrainConfig(epochs=40, lr=3e-3), progress=False)
    x, y = split.x_test, split.y_test
    float_acc = accuracy(model, x, y)
    print(f"LeNet-5 on digits: float32 test accuracy {100 * float_acc:.1f}%; {args.chips} chips per cell.\n")

    print("### Drift, pcm preset\n\n| time after programming | no compensation | global compensation |\n|---|---|---|")
    chips = {mode: map_model(model, ChipConfig.preset("pcm").with_values({"drift_compensation": mode})) for mode in ("none", "global")}
    table = {mode: {label: [] for label, _ in DRIFT} for mode in chips}
    for seed in range(args.chips):
        for mode, chip in chips.items():
            chip.program(seed)
            for label, t in DRIFT:
                chip.drift(t)
                table[mode][label].append(accuracy(chip, x, y))
    for label, _ in DRIFT:
        print(f"| {label} | {_cell(table['none'][label])} | {_cell(table['global'][label])} |")
    print(f"\n[{time.time() - start:.0f} s]", file=sys.stderr)

    print("\n### ADC resolution, pcm preset at t = 0\n\n| ADC bits | fixed bound 10 | calibrated (99.99th percentile) |\n|---|---|---|")
    calibration = split.x_train[torch.randperm(len(split.x_train), generator=torch.Generator().manual_seed(0))[:512]]
    for bits in (4, 6, 8):
        fixed = ChipConfig.preset("pcm").with_values({"tile.adc": {"bits": bits, "range": "fixed", "bound": 10.0}})
        calibrated = fixed.with_values({"tile.adc": {"bits": bits, "range": "calibrated", "bound": 10.0}})
        accs = {"fixed": [], "calibrated": []}
        for seed in range(args.chips):
            accs["fixed"].append(accuracy(map_model(model, fixed, seed=seed), x, y))
            chip = map_model(model, calibrated, seed=seed)
            calibrate_ranges(chip, calibration)
            accs["calibrated"].append(accuracy(chip, x, y))
        print(f"| {bits} | {_cell(accs['fixed'])} | {_cell(accs['calibrated'])} |")
    print(f"\n[{time.time() - start:.0f} s]", file=sys.stderr)

    noisy = ChipConfig.preset("pcm").with_values({"device.write_noise.scale": 4.0})
    print("\n### Denoising blocks, pcm with programming noise x4, t = 0\n")
    print("| chip seed | before | after | blocks after | overhead |\n|---|---|---|---|---|")
    drops = []
    for seed in range(args.chips):
        chip = map_model(model, noisy, seed=seed)
        result = denoise(chip, split, target=float_acc - 0.02, max_blocks=3, epochs=6, ratio=0.125, progress=False)
        layers = ", ".join(name for name, _ in result.steps) or "(none)"
        drops.append((float_acc - result.baseline_accuracy, float_acc - result.final_accuracy, result.overhead_percent))
        print(f"| {seed} | {100 * result.baseline_accuracy:.1f}% | {100 * result.final_accuracy:.1f}% | {layers} | {result.overhead_percent:.2f}% |")
    before, after, overhead = (np.mean([d[i] for d in drops]) for i in range(3))
    print(f"\nMean accuracy drop from float: {100 * before:.1f}% -> {100 * after:.1f}% at {overhead:.2f}% extra parameters.")
    print(f"\n({time.time() - start:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
