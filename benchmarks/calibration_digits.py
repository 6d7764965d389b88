"""Study: what calibration wins back on a PCM chip (scikit-learn digits, LeNet-5).

1. Accuracy over drift time, 1 s to 10 years, without and with global drift compensation.
2. 4/6/8-bit ADCs on the pcm preset at t = 0: its fixed bound (10) against the same chip after
   ``calibrate_chip(ranges="percentile")`` (ADC ranges switched to calibrated and set to the
   99.99th percentile of 512 training images; the DAC stays per-vector abs-max). Before and
   after are on the same chip at the same read noise.
3. A noisy chip (programming noise x4) before and after ``denoise``: blocks of width 1/8 of the
   layer's channels, at most 3, each kept only if it raises the accuracy on 20% of the train
   split held out for validation, until within 2% of float accuracy; their parameter overhead.
``--chips`` chips (programming seeds) per point. Prints markdown tables and writes
benchmarks/results/calibration_digits.png. ``python benchmarks/calibration_digits.py [--quick]``
"""

from __future__ import annotations

import numpy as np
import torch

import studylib
from xbarsim import ChipConfig, map_model
from xbarsim.calibration.calibrate import calibrate_chip
from xbarsim.calibration.denoise import denoise
from xbarsim.models import data, zoo
from xbarsim.models.data import DataSplit
from xbarsim.models.training import TrainConfig, accuracy
from xbarsim.sweeps.metrics import NoiseCurve

ADC_BITS = (4, 6, 8)
COMPENSATION = {"none": "no compensation", "global": "global compensation"}


def drift_part(model: torch.nn.Module, split: DataSplit, chips: int) -> dict[str, NoiseCurve]:
    """Accuracy over ``studylib.DRIFT`` on the pcm preset, per compensation mode."""
    times = [t for _, t in studylib.DRIFT]
    pcm = ChipConfig.preset("pcm")
    return {label: studylib.drift_curve(model, pcm.with_values({"drift_compensation": mode}), times, chips, split)
            for mode, label in COMPENSATION.items()}  # fmt: skip


def adc_part(model: torch.nn.Module, split: DataSplit, chips: int, x_calibration: torch.Tensor) -> dict[str, NoiseCurve]:
    """Accuracy per ADC resolution with the fixed bound and after range calibration, same chips."""
    fixed, calibrated = np.zeros((len(ADC_BITS), chips)), np.zeros((len(ADC_BITS), chips))
    for i, bits in enumerate(ADC_BITS):
        cfg = ChipConfig.preset("pcm").with_values({"tile.adc": {"bits": bits, "range": "fixed", "bound": 10.0}})
        for c in range(chips):
            report = calibrate_chip(map_model(model, cfg, seed=c), x_calibration, split.x_test, split.y_test, ranges="percentile")
            if report.switched != ["adc"]:
                raise RuntimeError(f"expected only the ADC to switch to calibrated ranges, got {report.switched}")
            fixed[i, c], calibrated[i, c] = report.accuracy_before, report.accuracy_after
    bits = np.asarray(ADC_BITS, float)
    return {"fixed bound 10": NoiseCurve(bits, fixed), "calibrated (99.99th percentile)": NoiseCurve(bits, calibrated)}


def denoise_part(model: torch.nn.Module, split: DataSplit, chips: int, target: float, epochs: int, seed: int):
    """One ``denoise`` search per chip with programming noise x4; its table rows and results."""
    noisy = ChipConfig.preset("pcm").with_values({"device.write_noise.scale": 4.0})
    rows, results = [], []
    for c in range(chips):
        result = denoise(map_model(model, noisy, seed=c), split, target=target, max_blocks=3, epochs=epochs, ratio=0.125,
                         seed=seed, progress=False, validation=0.2)  # fmt: skip
        tried = ", ".join(f"{t.layer} {'kept' if t.kept else 'dropped'}" for t in result.trials) or "(target met)"
        rows.append([c, f"{100 * result.baseline_accuracy:.1f}%", f"{100 * result.validation_before:.1f}%",
                     f"{100 * result.validation_after:.1f}%", f"{100 * result.final_accuracy:.1f}%", tried,
                     f"{result.overhead_percent:.2f}%"])  # fmt: skip
        results.append(result)
    return rows, results


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "calibration_digits.png")
    studylib.add_chips_option(parser, full=5, quick=2)
    args = parser.parse_args(argv)
    studylib.reproducible(args.seed, args.threads)
    clock = studylib.Clock()
    chips = studylib.chip_count(parser, args)
    base = TrainConfig(epochs=10 if args.quick else 40, lr=3e-3, seed=args.seed)
    block_epochs = 2 if args.quick else 6
    split = data.digits(args.seed)
    with studylib.progress(4, "calibration") as bar:
        model = studylib.trained(lambda: zoo.build("lenet5", image_size=8), split, base)
        float_acc = accuracy(model, split.x_test, split.y_test)
        clock.log(f"trained: float32 test accuracy {100 * float_acc:.1f}%")
        bar.update()
        drift = drift_part(model, split, chips)
        clock.log(f"drift: 10 years {', '.join(f'{label} {100 * c.mean[-1]:.1f}%' for label, c in drift.items())}")
        bar.update()
        order = torch.randperm(len(split.x_train), generator=torch.Generator().manual_seed(args.seed))
        adc = adc_part(model, split, chips, split.x_train[order[:512]])
        clock.log("ADC: " + ", ".join(f"{b} bits {100 * adc['fixed bound 10'].mean[i]:.1f}% -> "
                                      f"{100 * adc['calibrated (99.99th percentile)'].mean[i]:.1f}%" for i, b in enumerate(ADC_BITS)))  # fmt: skip
        bar.update()
        rows, results = denoise_part(model, split, chips, float_acc - 0.02, block_epochs, args.seed)
        clock.log(f"denoise: {sum(len(r.steps) for r in results)} block(s) kept on {chips} chips")
        bar.update()

    print(f"LeNet-5 on digits ({len(split.y_train)} train / {len(split.y_test)} test): float32 test accuracy "
          f"{100 * float_acc:.1f}%; {base.epochs} epochs, Adam lr {base.lr}, seed {args.seed}; {chips} chips per cell "
          f"(programming seeds 0..{chips - 1}), mean ± std over chips.\n")  # fmt: skip
    print("#### Drift, pcm preset\n")
    print(studylib.markdown_table(["time after programming", *drift],
                                  [[label, *(studylib.mean_std_cell(c.accuracies[i]) for c in drift.values())]
                                   for i, (label, _) in enumerate(studylib.DRIFT)]))  # fmt: skip
    print("\n#### ADC resolution, pcm preset at t = 0 (same chips before and after calibration)\n")
    print(studylib.markdown_table(["ADC bits", *adc], [[bits, *(studylib.mean_std_cell(c.accuracies[i]) for c in adc.values())]
                                                       for i, bits in enumerate(ADC_BITS)]))  # fmt: skip
    print(f"\n#### Denoising blocks, pcm with programming noise x4, t = 0 (target {100 * (float_acc - 0.02):.1f}%, "
          f"{block_epochs} epochs per block)\n")  # fmt: skip
    print(studylib.markdown_table(["chip", "test before", "validation before", "validation after", "test after",
                                   "blocks tried (most sensitive layer first)", "overhead"], rows))  # fmt: skip
    before = np.mean([float_acc - r.baseline_accuracy for r in results])
    after = np.mean([float_acc - r.final_accuracy for r in results])
    overhead = np.mean([r.overhead_percent for r in results])
    print(f"\nMean test accuracy drop from float: {100 * before:.1f}% -> {100 * after:.1f}% at {overhead:.2f}% extra parameters "
          f"({sum(len(r.steps) for r in results)} of {sum(len(r.trials) for r in results)} blocks tried kept).")  # fmt: skip
    panels = {"LeNet-5 on pcm: drift": drift, "LeNet-5 on pcm at t = 0: ADC range": adc}
    path = studylib.plot_panels(panels, args.plot, {"LeNet-5 on pcm: drift": "seconds after programming",
                                                    "LeNet-5 on pcm at t = 0: ADC range": "ADC bits"},
                                "Calibration on the pcm preset (digits)", fit=False, columns=2)  # fmt: skip
    print(f"\nplot: {path}; run time {clock.seconds():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
