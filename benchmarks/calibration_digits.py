"""Study: what calibration wins back on a PCM chip (scikit-learn digits, LeNet-5).

1. Accuracy over drift time, 1 s to 10 years, without and with global drift compensation.
2. 4/6/8-bit ADCs on the pcm preset at t = 0: its fixed bound (10) against the same chip after
   ``calibrate_chip(ranges="percentile")`` (ADC ranges switched to calibrated and set to the
   99.99th percentile of 512 training images; each matrix's new bounds kept only when the
   accuracy on 20% of the train split, held out, does not fall; the DAC stays per-vector
   abs-max). Before and after are on the same chip at the same read noise.
3. A noisy chip (programming noise x4) before and after ``denoise``: blocks of width 1/8 of the
   layer's channels, at most 3, each kept only if it raises the accuracy on 20% of the train
   split held out for validation, until within 2 points of the validation accuracy with every
   layer exact; their parameter overhead. No decision looks at the test split.
``--chips`` chips (programming seeds) per point, ``--train-seeds`` trained networks. Prints
markdown tables, writes benchmarks/results/calibration_digits.png and the per-seed values to
calibration_digits.json. ``python benchmarks/calibration_digits.py [--quick] [--train-seeds N]``
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


def adc_part(model: torch.nn.Module, split: DataSplit, chips: int, x_calibration: torch.Tensor,
             validation: DataSplit) -> tuple[dict[str, NoiseCurve], tuple[int, int]]:  # fmt: skip
    """Accuracy per ADC resolution with the fixed bound and after range calibration (each matrix's
    new bounds kept only if the validation accuracy does not fall), same chips; and how many
    matrix calibrations kept the fixed bounds, of how many."""
    fixed, calibrated = np.zeros((len(ADC_BITS), chips)), np.zeros((len(ADC_BITS), chips))
    reverted = total = 0
    for i, bits in enumerate(ADC_BITS):
        cfg = ChipConfig.preset("pcm").with_values({"tile.adc": {"bits": bits, "range": "fixed", "bound": 10.0}})
        for c in range(chips):
            chip = map_model(model, cfg, seed=c)
            report = calibrate_chip(chip, x_calibration, (validation.x_test, validation.y_test), split.x_test, split.y_test,
                                    ranges="percentile")  # fmt: skip
            total += len(list(chip.chip.matrices()))
            if report.switched not in (["adc"], []):
                raise RuntimeError(f"expected only the ADC to switch to calibrated ranges, got {report.switched}")
            fixed[i, c], calibrated[i, c] = report.accuracy_before, report.accuracy_after
            reverted += len(report.reverted)
    bits = np.asarray(ADC_BITS, float)
    resolution = 1.0 / len(split.y_test)
    curves = {"fixed bound 10": NoiseCurve(bits, fixed, resolution), "calibrated (99.99th percentile)": NoiseCurve(bits, calibrated, resolution)}
    return curves, (reverted, total)


def denoise_part(model: torch.nn.Module, split: DataSplit, chips: int, epochs: int, seed: int):
    """One ``denoise`` search per chip with programming noise x4, to its default target (the
    validation accuracy with every layer exact, less 2 points); its table rows and results."""
    noisy = ChipConfig.preset("pcm").with_values({"device.write_noise.scale": 4.0})
    rows, results = [], []
    for c in range(chips):
        result = denoise(map_model(model, noisy, seed=c), split, max_blocks=3, epochs=epochs, ratio=0.125, seed=seed, progress=False,
                         validation=0.2)  # fmt: skip
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
    env = studylib.environment()
    clock = studylib.Clock()
    chips = studylib.chip_count(parser, args)
    seeds = studylib.training_seeds(parser, args)
    epochs = 10 if args.quick else 40
    block_epochs = 2 if args.quick else 6
    split = data.digits(args.seed)
    validation = data.hold_out(split, 0.2, args.seed)
    order = torch.randperm(len(validation.x_train), generator=torch.Generator().manual_seed(args.seed))
    x_calibration = validation.x_train[order[:512]]
    drifts, adcs, denoised, floats, reverted, results = [], [], [], [], np.zeros(2, int), {"per_seed": []}
    with studylib.progress(4 * len(seeds), "calibration") as bar:
        for seed in seeds:
            model = studylib.trained(lambda: zoo.build("lenet5", image_size=8), split, TrainConfig(epochs=epochs, lr=3e-3, seed=seed))
            floats.append(accuracy(model, split.x_test, split.y_test))
            clock.log(f"training seed {seed}: float32 test accuracy {100 * floats[-1]:.1f}%")
            bar.update()
            drifts.append(drift_part(model, split, chips))
            clock.log(f"drift: 10 years {', '.join(f'{label} {100 * c.mean[-1]:.1f}%' for label, c in drifts[-1].items())}")
            bar.update()
            adc, kept_fixed = adc_part(model, split, chips, x_calibration, validation)
            adcs.append(adc)
            reverted += kept_fixed
            clock.log("ADC: " + ", ".join(f"{b} bits {100 * adc['fixed bound 10'].mean[i]:.1f}% -> "
                                          f"{100 * adc['calibrated (99.99th percentile)'].mean[i]:.1f}%" for i, b in enumerate(ADC_BITS)))  # fmt: skip
            bar.update()
            denoised.append(denoise_part(model, split, chips, block_epochs, args.seed))
            clock.log(f"denoise: {sum(len(r.steps) for r in denoised[-1][1])} block(s) kept on {chips} chips")
            bar.update()
            results["per_seed"].append({
                "seed": seed, "float_accuracy": floats[-1],
                "drift": {label: c.accuracies for label, c in drifts[-1].items()},
                "adc": {label: c.accuracies for label, c in adc.items()},
                "denoise": [{"test_before": r.baseline_accuracy, "test_after": r.final_accuracy, "validation_before": r.validation_before,
                             "validation_after": r.validation_after, "target": r.target, "exact_validation": r.exact_validation,
                             "kept": [t.layer for t in r.trials if t.kept], "overhead_percent": r.overhead_percent}
                            for r in denoised[-1][1]],
            })  # fmt: skip

    floats_cell = studylib.summary_cell(studylib.values_summary(seeds, floats), 1, percent=True)
    print(f"LeNet-5 on digits ({len(split.y_train)} train / {len(split.y_test)} test): float32 test accuracy {floats_cell}%; "
          f"{epochs} epochs, Adam lr 0.003; training seeds {', '.join(map(str, seeds))}, data split seed {args.seed}; {chips} chips "
          f"per cell (programming seeds 0..{chips - 1}). Cells: mean over training seeds ± its standard error (of each seed's "
          f"mean over chips), and the chip-to-chip std.\n")  # fmt: skip
    print("#### Drift, pcm preset\n")
    print(studylib.markdown_table(["time after programming", *COMPENSATION.values()],
                                  [[label, *(studylib.chips_cell([d[mode].accuracies[i] for d in drifts]) for mode in COMPENSATION.values())]
                                   for i, (label, _) in enumerate(studylib.DRIFT)]))  # fmt: skip
    gain = [d["global compensation"].mean - d["no compensation"].mean for d in drifts]
    print("\nGlobal compensation - none, per training seed (points): " + "; ".join(
        f"{label} {', '.join(f'{100 * g[i]:.1f}' for g in gain)}" for i, (label, _) in enumerate(studylib.DRIFT)) + ".")  # fmt: skip
    labels = list(adcs[0])
    print(f"\n#### ADC resolution, pcm preset at t = 0 (same chips before and after calibration; {reverted[0]} of "
          f"{reverted[1]} matrix calibrations kept their fixed bound on validation)\n")  # fmt: skip
    print(studylib.markdown_table(["ADC bits", *labels, "calibrated - fixed, per seed (points)"],
                                  [[bits, *(studylib.chips_cell([a[label].accuracies[i] for a in adcs]) for label in labels),
                                    ", ".join(f"{100 * (a[labels[1]].mean[i] - a[labels[0]].mean[i]):.1f}" for a in adcs)]
                                   for i, bits in enumerate(ADC_BITS)]))  # fmt: skip
    for seed, (rows, results_) in zip(seeds, denoised):
        target = np.mean([r.target for r in results_])
        print(f"\n#### Denoising blocks, pcm with programming noise x4, t = 0, training seed {seed} (target: validation accuracy with "
              f"every layer exact less 2 points, {100 * target:.1f}% on average; {block_epochs} epochs per block)\n")  # fmt: skip
        print(studylib.markdown_table(["chip", "test before", "validation before", "validation after", "test after",
                                       "blocks tried (most sensitive layer first)", "overhead"], rows))  # fmt: skip
    drops = [(np.mean([f - r.baseline_accuracy for r in res]), np.mean([f - r.final_accuracy for r in res])) for f, (_, res) in zip(floats, denoised)]
    before = studylib.values_summary(seeds, [d[0] for d in drops])
    after = studylib.values_summary(seeds, [d[1] for d in drops])
    overhead = np.mean([r.overhead_percent for _, res in denoised for r in res])
    kept = sum(len(r.steps) for _, res in denoised for r in res)
    tried = sum(len(r.trials) for _, res in denoised for r in res)
    print(f"\nMean test accuracy drop from float: {studylib.summary_cell(before, 1, percent=True)} -> "
          f"{studylib.summary_cell(after, 1, percent=True)} points (mean over seeds ± its error; per seed "
          f"{studylib.per_seed_cell(before, 1, percent=True)} -> {studylib.per_seed_cell(after, 1, percent=True)}) at {overhead:.2f}% "
          f"extra parameters ({kept} of {tried} blocks tried kept).")  # fmt: skip
    panels = {"LeNet-5 on pcm: drift": {label: studylib.arm_of(seeds, [d[label] for d in drifts]) for label in COMPENSATION.values()},
              "LeNet-5 on pcm at t = 0: ADC range": {label: studylib.arm_of(seeds, [a[label] for a in adcs]) for label in labels}}
    path = studylib.plot_panels(panels, args.plot, {"LeNet-5 on pcm: drift": "seconds after programming",
                                                    "LeNet-5 on pcm at t = 0: ADC range": "ADC bits"},
                                "Calibration on the pcm preset (digits)", fit=False, columns=2)  # fmt: skip
    print(f"\n{studylib.environment_line(env, clock.seconds())}")
    record = studylib.write_json(args.json, "calibration_digits", args, env, clock.seconds(), results)
    print(f"plot: {path}; per-seed results: {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
