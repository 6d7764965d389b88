"""Study: a small GPT against an LSTM as character-level language models on a PCM chip (CPython's docs).

Data: ``pydoc`` (CPython's ``pydoc_data.topics``; 90% train, 5% validation, 5% test by position, windows of
128 characters; ``models.text``); by default the networks train on 1024 of the 3269 training windows, spread
evenly over the text (``--train-windows``), to keep the run near 12 minutes per training seed on the shared
2-core machine.
Models of similar size: ``chargpt`` (2 GPT blocks of width 64, 4 heads, MLP 256, context 128) and
``charlstm`` (embedding 32, one LSTM layer of 128). Each is trained in float32
(``--epochs``, Adam lr 0.003, cosine schedule, batch 32), then one copy is fine-tuned in float32 and one
hardware-aware on the ``pcm`` preset's own noise and converters (``--hwa-epochs`` each, lr 0.001; the
float copy is the control for the extra training; HWA: write noise drawn every forward,
per-epoch PCM read noise, 8-bit DAC/ADC, output noise; the attention's score and context products stay
digital, as on the chip). Each network is then mapped on the ``pcm`` preset (global drift compensation)
and its test bits per character (BPC) measured right after programming, after 1 day and after 1 year, on
``--chips`` chips (programming seeds) per training seed: with the preset's fixed ADC bound (10), and with each
chip's ADC ranges calibrated after programming (99.99th percentile on 16 training windows).

IBM's 64-core PCM chip ran a character-level LSTM on Penn Treebank within 0.1 BPC of its software baseline
(Le Gallo et al., Nature Electronics 6, 680 (2023)); the gap columns are each network's chip BPC minus its own
float32 BPC, and the last line compares the chips with the float network trained as long.
Every network is trained with ``--train-seeds`` training seeds (the float copy, the fine-tuned copies and
their chips per seed); each cell is the mean ± standard error over them. Prints markdown tables, writes
benchmarks/results/chargpt_pydoc.png and the per-seed values to chargpt_pydoc.json.
``python benchmarks/chargpt_pydoc.py [--quick] [--train-seeds N]``
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch

import studylib
from xbarsim import ChipConfig, map_model
from xbarsim.calibration.ranges import calibrate_ranges, switch_to_calibrated
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig, bits_per_character, train
from xbarsim.sweeps.metrics import NoiseCurve

HWA = "+ HWA fine-tuning"
FINE_TUNING = ("+ float fine-tuning", HWA)  # the same epochs and learning rate, without and with the chip's noise
ADC = {"fixed ADC bound": False, "calibrated ADC": True}
TIMES = [("after programming", 0.0), ("1 day", 86400.0), ("1 year", 365.25 * 86400.0)]
MODELS = {
    "chargpt": lambda: zoo.build("chargpt", context=128, dim=64, depth=2, heads=4, mlp_dim=256),
    "LSTM": lambda: zoo.build("charlstm", embed_dim=32, hidden_size=128, num_layers=1),
}


def chip_bpc(model: torch.nn.Module, split: data.DataSplit, chips: int, calibrated: bool) -> NoiseCurve:
    """Test BPC on the pcm preset at each of ``TIMES``, per chip (programming seeds 0 .. chips-1); with
    ``calibrated``, each chip's ADC ranges are set after programming to the 99.99th percentile of its
    outputs on 16 training windows (the pcm preset's fixed ADC bound is 10)."""
    chip = map_model(model, ChipConfig.preset("pcm"))
    if calibrated:
        switch_to_calibrated(chip)
    x_calibration = split.x_train[:: max(1, len(split.x_train) // 16)][:16]
    values = np.zeros((len(TIMES), chips))
    for c in range(chips):
        chip.program(c)
        if calibrated:
            calibrate_ranges(chip, x_calibration, "percentile", 99.99)
        for i, (_, t) in enumerate(TIMES):
            if t > 0:
                chip.drift(t)
            values[i, c] = bits_per_character(chip, split.x_test, split.y_test)
    return NoiseCurve(np.asarray([max(t, 1.0) for _, t in TIMES]), values, metric="bpc")


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "chargpt_pydoc.png")
    studylib.add_chips_option(parser, full=5, quick=2, per="cell and training seed")
    parser.add_argument("--epochs", type=int, help="float32 training epochs (default 3; 1 with --quick)")
    parser.add_argument("--hwa-epochs", type=int, help="fine-tuning epochs, float and hardware-aware (default 1)")
    parser.add_argument("--train-windows", type=int, help="train on N windows spread evenly over the training text, 0 for all 3269 (default 1024; 192 with --quick)")
    args, clock, chips = studylib.begin(parser, argv)
    env = studylib.environment()
    seeds = studylib.training_seeds(parser, args)
    epochs = args.epochs or (1 if args.quick else 3)
    hwa_epochs = args.hwa_epochs or 1
    split = data.load("pydoc")
    windows = (args.train_windows if args.train_windows is not None else 192 if args.quick else 1024) or len(split.x_train)
    chosen = torch.linspace(0, len(split.x_train) - 1, windows).long()  # spread over the whole training text
    split = replace(split, x_train=split.x_train[chosen], y_train=split.y_train[chosen])
    # per (model, training): the float BPC of each seed's network, and its chips' curves per ADC mode
    results: dict[tuple[str, str], tuple[list[float], list[dict[str, NoiseCurve]]]] = {}
    with studylib.progress(3 * len(MODELS) * len(seeds), "chargpt vs lstm") as bar:
        for seed in seeds:
            base = TrainConfig(epochs=epochs, lr=3e-3, batch_size=32, seed=seed)
            tuning = replace(base, epochs=hwa_epochs, lr=1e-3, hwa=ChipConfig.preset("pcm"))
            for name, build in MODELS.items():
                plain = studylib.trained(build, split, base)
                tuned = {label: copy.deepcopy(plain) for label in FINE_TUNING}
                for label, model in tuned.items():
                    torch.manual_seed(seed)
                    train(model, split, replace(tuning, hwa=tuning.hwa if label == HWA else None), progress=False)
                for training, model in (("float32", plain), *tuned.items()):
                    float_bpc = bits_per_character(model, split.x_test, split.y_test)
                    floats, chips_curves = results.setdefault((name, training), ([], []))
                    floats.append(float_bpc)
                    chips_curves.append({adc: chip_bpc(model, split, chips, on) for adc, on in ADC.items()})
                    for adc, curve in chips_curves[-1].items():
                        clock.log(f"{name}, {training}, training seed {seed}: float {float_bpc:.3f} BPC, on pcm with {adc} "
                                  f"{', '.join(f'{label} {v:.3f}' for (label, _), v in zip(TIMES, curve.mean))}")  # fmt: skip
                    bar.update()

    params = {name: sum(p.numel() for p in build().parameters()) for name, build in MODELS.items()}
    print(f"pydoc: {split.y_train.numel():,} training characters ({windows} windows), {split.y_test.numel():,} test characters; "
          f"{epochs} float32 epochs, {hwa_epochs} fine-tuning epochs (float and hardware-aware); training seeds "
          f"{', '.join(map(str, seeds))}; {chips} chips per cell and training seed (programming seeds 0..{chips - 1}); parameters: "
          f"{', '.join(f'{n} {p:,}' for n, p in params.items())}; uniform guessing: {np.log2(97):.3f} BPC. Cells: mean over training "
          f"seeds ± its standard error (of each seed's mean over chips), and the chip-to-chip std; gaps: each seed's chip BPC "
          f"(mean over chips) minus its network's float32 BPC, mean ± standard error (per seed).\n")  # fmt: skip
    headers = ["model", "training", "float32 BPC (the network's own)", "pcm chip", *(label for label, _ in TIMES),
               "gap after programming (per seed)", "gap after 1 year"]  # fmt: skip
    rows, record = [], {}
    for (name, training), (floats, curves) in results.items():
        entry = record.setdefault(name, {})[training] = {"float_bpc": studylib.values_summary(seeds, floats), "chips": {}}
        for adc in ADC:
            gaps = [studylib.values_summary(seeds, [c[adc].mean[i] - f for c, f in zip(curves, floats)]) for i in (0, -1)]
            entry["chips"][adc] = {"per_seed": [{"seed": s, "times": c[adc].sigmas, "bpc": c[adc].accuracies} for s, c in zip(seeds, curves)],
                                   "gap_after_programming": gaps[0], "gap_after_1_year": gaps[1]}  # fmt: skip
            rows.append([name, training, studylib.summary_cell(entry["float_bpc"]), adc,
                         *(studylib.chips_cell([c[adc].accuracies[i] for c in curves], 3, percent=False) for i in range(len(TIMES))),
                         f"{_signed(gaps[0])} ({studylib.per_seed_cell(gaps[0])})", _signed(gaps[1])])  # fmt: skip
    print(studylib.markdown_table(headers, rows))
    baseline = {name: results[(name, FINE_TUNING[0])][0] for name in MODELS}
    to_baseline = {(name, training, adc): studylib.values_summary(seeds, [c[adc].mean[0] - b for c, b in zip(results[(name, training)][1], baseline[name])])
                   for name in MODELS for training in FINE_TUNING for adc in ADC}  # fmt: skip
    print("\nGap after programming to the software baseline trained as long (float fine-tuning's float32 BPC of the same seed), as "
          "IBM reports it: " + ", ".join(f"{name} {training}, {adc}: {_signed(gap)} ({studylib.per_seed_cell(gap)})"
                                         for (name, training, adc), gap in to_baseline.items()))  # fmt: skip
    for name, trainings in record.items():
        for training in FINE_TUNING:
            for adc in ADC:
                trainings[training]["chips"][adc]["gap_to_baseline_after_programming"] = to_baseline[(name, training, adc)]
    panels = {f"{name}, {adc}": {training: studylib.arm_of(seeds, [c[adc] for c in curves]) for (n, training), (_, curves) in results.items() if n == name}
              for name in MODELS for adc in ADC}  # fmt: skip
    path = studylib.plot_panels(panels, args.plot, "seconds after programming (programming plotted at 1 s)",
                                "Character LMs on pcm (pydoc)", fit=False, columns=2, ylabel="test bits per character")  # fmt: skip
    print(f"\n{studylib.environment_line(env, clock.seconds())}")
    written = studylib.write_json(args.json, "chargpt_pydoc", args, env, clock.seconds(), record)
    print(f"plot: {path}; per-seed results: {written}")
    return 0


def _signed(stats: dict) -> str:
    """``summary_cell`` of a gap in BPC, with its sign."""
    cell = studylib.summary_cell(stats)
    return cell if cell.startswith("-") else "+" + cell


if __name__ == "__main__":
    raise SystemExit(main())
