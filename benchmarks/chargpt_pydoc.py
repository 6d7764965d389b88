"""Study: a small GPT against an LSTM as character-level language models on a PCM chip (CPython's docs).

Data: ``pydoc`` (CPython's ``pydoc_data.topics``; 90% train, 5% validation, 5% test by position, windows of
128 characters; ``models.text``); by default the networks train on 1024 of the 3269 training windows, spread
evenly over the text (``--train-windows``), to keep the run near 20 minutes on the shared 2-core machine.
Models of similar size: ``chargpt`` (2 GPT blocks of width 64, 4 heads, MLP 256, context 128) and
``charlstm`` (embedding 32, one LSTM layer of 128). Each is trained in float32
(``--epochs``, Adam lr 0.003, cosine schedule, batch 32), then one copy is fine-tuned in float32 and one
hardware-aware on the ``pcm`` preset's own noise and converters (``--hwa-epochs`` each, lr 0.001; the
float copy is the control for the extra training; HWA: write noise drawn every forward,
per-epoch PCM read noise, 8-bit DAC/ADC, output noise; the attention's score and context products stay
digital, as on the chip). Each network is then mapped on the ``pcm`` preset (global drift compensation)
and its test bits per character (BPC) measured right after programming, after 1 day and after 1 year, on
``--chips`` chips (programming seeds), mean ± std: with the preset's fixed ADC bound (10), and with each
chip's ADC ranges calibrated after programming (99.99th percentile on 16 training windows).

IBM's 64-core PCM chip ran a character-level LSTM on Penn Treebank within 0.1 BPC of its software baseline
(Le Gallo et al., Nature Electronics 6, 680 (2023)); the gap columns are each network's chip BPC minus its own
float32 BPC, and the last line compares the chips with the float network trained as long.
Prints markdown tables and writes benchmarks/results/chargpt_pydoc.png.
``python benchmarks/chargpt_pydoc.py [--quick]``
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


def bpc_cell(values) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.3f} ± {values.std(ddof=1) if values.size > 1 else 0.0:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "chargpt_pydoc.png")
    studylib.add_chips_option(parser, full=5, quick=2)
    parser.add_argument("--epochs", type=int, help="float32 training epochs (default 3; 1 with --quick)")
    parser.add_argument("--hwa-epochs", type=int, help="fine-tuning epochs, float and hardware-aware (default 1)")
    parser.add_argument("--train-windows", type=int, help="train on N windows spread evenly over the training text, 0 for all 3269 (default 1024; 192 with --quick)")
    args, clock, chips = studylib.begin(parser, argv)
    epochs = args.epochs or (1 if args.quick else 3)
    hwa_epochs = args.hwa_epochs or 1
    split = data.load("pydoc")
    windows = (args.train_windows if args.train_windows is not None else 192 if args.quick else 1024) or len(split.x_train)
    chosen = torch.linspace(0, len(split.x_train) - 1, windows).long()  # spread over the whole training text
    split = replace(split, x_train=split.x_train[chosen], y_train=split.y_train[chosen])
    base = TrainConfig(epochs=epochs, lr=3e-3, batch_size=32, seed=args.seed)
    tuning = replace(base, epochs=hwa_epochs, lr=1e-3, hwa=ChipConfig.preset("pcm"))
    results: dict[tuple[str, str], tuple[float, dict[str, NoiseCurve]]] = {}
    with studylib.progress(3 * len(MODELS), "chargpt vs lstm") as bar:
        for name, build in MODELS.items():
            plain = studylib.trained(build, split, base)
            tuned = {label: copy.deepcopy(plain) for label in FINE_TUNING}
            for label, model in tuned.items():
                torch.manual_seed(args.seed)
                train(model, split, replace(tuning, hwa=tuning.hwa if label == HWA else None), progress=False)
            for training, model in (("float32", plain), *tuned.items()):
                float_bpc = bits_per_character(model, split.x_test, split.y_test)
                results[(name, training)] = (float_bpc, {adc: chip_bpc(model, split, chips, on) for adc, on in ADC.items()})
                for adc, curve in results[(name, training)][1].items():
                    clock.log(f"{name}, {training}: float {float_bpc:.3f} BPC, on pcm with {adc} "
                              f"{', '.join(f'{label} {v:.3f}' for (label, _), v in zip(TIMES, curve.mean))}")  # fmt: skip
                bar.update()

    params = {name: sum(p.numel() for p in build().parameters()) for name, build in MODELS.items()}
    print(f"pydoc: {split.y_train.numel():,} training characters ({windows} windows), {split.y_test.numel():,} test characters; "
          f"{epochs} float32 epochs, {hwa_epochs} fine-tuning epochs (float and hardware-aware), seed {args.seed}; {chips} chips per cell "
          f"(programming seeds 0..{chips - 1}), mean ± std over chips; parameters: "
          f"{', '.join(f'{n} {p:,}' for n, p in params.items())}; uniform guessing: {np.log2(97):.3f} BPC.\n")  # fmt: skip
    headers = ["model", "training", "float32 BPC (the network's own)", "pcm chip", *(label for label, _ in TIMES),
               "gap after programming", "gap after 1 year"]  # fmt: skip
    rows = []
    for (name, training), (float_bpc, curves) in results.items():
        for adc, curve in curves.items():
            rows.append([name, training, f"{float_bpc:.3f}", adc, *(bpc_cell(curve.accuracies[i]) for i in range(len(TIMES))),
                         f"{curve.mean[0] - float_bpc:+.3f}", f"{curve.mean[-1] - float_bpc:+.3f}"])  # fmt: skip
    print(studylib.markdown_table(headers, rows))
    baseline = {name: results[(name, FINE_TUNING[0])][0] for name in MODELS}
    print("\nGap after programming to the software baseline trained as long (float fine-tuning's float32 BPC), as IBM "
          "reports it: " + ", ".join(f"{name} {training}, {adc}: {results[(name, training)][1][adc].mean[0] - baseline[name]:+.3f}"
                                     for name in MODELS for training in FINE_TUNING for adc in ADC))  # fmt: skip
    panels = {f"{name}, {adc}": {training: curves[adc] for (n, training), (_, curves) in results.items() if n == name}
              for name in MODELS for adc in ADC}  # fmt: skip
    path = studylib.plot_panels(panels, args.plot, "seconds after programming (programming plotted at 1 s)",
                                "Character LMs on pcm (pydoc)", fit=False, columns=2, ylabel="test bits per character")  # fmt: skip
    print(f"\nplot: {path}; run time {clock.seconds():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
