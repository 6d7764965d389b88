"""Study: accuracy against energy per inference over ADC resolution and tile size (digits, LeNet-5).

LeNet-5 trained on scikit-learn's digits, mapped onto the ``pcm`` preset with 4- to 8-bit ADCs on
128x128, 256x256 and 512x512 tiles, with ideal wires and with a wire resistance of 1.48 ohm per
segment (NeuroSim's Cu wire at F = 32 nm, the node of the ISAAC figures the cost table uses;
docs/physics.md §10). Each cell is measured on ``--chips`` chips (programming seeds): the test
accuracy (mean ± std over chips) and, on the same reads, the energy and latency per inference
(``xbarsim.mapping.cost``, ISAAC's per-operation table, docs/cost.md) and the area of the tiles.
"wire delta" is the largest first-order attenuation of any device (the model holds for delta <~ 0.3).
``--train-seeds`` trained networks. Prints markdown tables, writes
benchmarks/results/cost_tradeoff_digits.png and the per-seed accuracies to cost_tradeoff_digits.json.
``python benchmarks/cost_tradeoff_digits.py [--quick] [--train-seeds N]``
"""

from __future__ import annotations

import numpy as np
import studylib
import torch

from xbarsim import ChipConfig, map_model
from xbarsim.crossbar.laws import irdrop
from xbarsim.mapping.cost import ChipCost, cost_since, counter_snapshot
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig, accuracy
from xbarsim.sweeps.plots import pyplot, save_figure

ADC_BITS = (4, 5, 6, 7, 8)
TILES = (128, 256, 512)
WIRE_OHM = 1.48  # per segment: NeuroSim's Cu resistivity at F = 32 nm (docs/physics.md §10)


def measure(model: torch.nn.Module, split: data.DataSplit, cfg: ChipConfig, chips: int) -> tuple[np.ndarray, ChipCost, float]:
    """Test accuracy on each of ``chips`` chips; the cost of an inference counted on the first chip's reads;
    the largest first-order wire attenuation delta of its devices (the model is valid for delta <~ 0.3)."""
    accuracies, cost, delta = np.zeros(chips), None, 0.0
    for c in range(chips):
        chip = map_model(model, cfg, seed=c)
        snapshot = counter_snapshot(chip.chip)
        accuracies[c] = accuracy(chip, split.x_test, split.y_test)
        if cost is None:
            cost = cost_since(chip.chip, snapshot, len(split.y_test))
            delta = max(irdrop.max_attenuation(m.tiles.g_now, m.tiles.grid, WIRE_OHM) for m in chip.chip.matrices())
    return accuracies, cost, delta


def plot(results: dict, path: str) -> str:
    """Accuracy against energy per inference, one line per (tile, wires) through the ADC resolutions."""
    fig, ax = pyplot().subplots(figsize=(7.5, 5))
    for (tile, wire), cells in results.items():
        energy = [cells[bits][1].energy_pj * 1e-3 for bits in ADC_BITS]
        mean = [100 * cells[bits][0].mean() for bits in ADC_BITS]
        std = [100 * cells[bits][0].std() for bits in ADC_BITS]
        style = "-o" if wire == 0 else "--s"
        label = f"{tile}x{tile} tiles, " + ("ideal wires" if wire == 0 else f"{wire:g} ohm/segment")
        ax.errorbar(energy, mean, yerr=std, fmt=style, capsize=3, label=label)
        for bits, x, y in zip(ADC_BITS, energy, mean):
            ax.annotate(f"{bits}b", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("energy per inference (nJ), ISAAC table, 32 nm")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("LeNet-5 on digits, pcm: accuracy vs energy\nover ADC bits (labels) and tile size", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = studylib.study_parser(__doc__.splitlines()[0], "cost_tradeoff_digits.png")
    studylib.add_chips_option(parser, full=5, quick=2, per="cell")
    args = parser.parse_args(argv)
    studylib.reproducible(args.seed, args.threads)
    env = studylib.environment()
    clock = studylib.Clock()
    chips = studylib.chip_count(parser, args)
    seeds = studylib.training_seeds(parser, args)
    split = data.digits(args.seed)
    epochs = 10 if args.quick else 40
    cases = [(tile, wire) for tile in TILES for wire in (0.0, WIRE_OHM)]
    per_seed: list[dict[tuple[int, float], dict[int, tuple[np.ndarray, ChipCost, float]]]] = []
    floats = []
    with studylib.progress(len(cases) * len(ADC_BITS) * len(seeds), "cost trade-off") as bar:
        for seed in seeds:
            model = studylib.trained(lambda: zoo.build("lenet5", image_size=8), split, TrainConfig(epochs=epochs, lr=3e-3, seed=seed))
            floats.append(accuracy(model, split.x_test, split.y_test))
            clock.log(f"training seed {seed}: float32 test accuracy {100 * floats[-1]:.1f}%")
            results: dict[tuple[int, float], dict[int, tuple[np.ndarray, ChipCost, float]]] = {}
            for tile, wire in cases:
                results[tile, wire] = {}
                for bits in ADC_BITS:
                    cfg = ChipConfig.preset("pcm").with_values({"tile.rows": tile, "tile.cols": tile, "tile.adc.bits": bits,
                                                                "tile.wire_resistance_ohm": wire})  # fmt: skip
                    results[tile, wire][bits] = measure(model, split, cfg, chips)
                    bar.update()
            per_seed.append(results)

    floats_cell = studylib.summary_cell(studylib.values_summary(seeds, floats), 1, percent=True)
    print(f"LeNet-5 on digits ({len(split.y_train)} train / {len(split.y_test)} test): float32 test accuracy {floats_cell}%; "
          f"{epochs} epochs, Adam lr 0.003; training seeds {', '.join(map(str, seeds))}, data split seed {args.seed}; pcm preset "
          f"at t = 0, {chips} chips per cell (programming seeds 0..{chips - 1}). Accuracy: mean over training seeds ± its standard "
          f"error (of each seed's mean over chips), and the chip-to-chip std; energy, latency and area per inference from the cost "
          f"model (ISAAC's table, 32 nm), counted on the test set with the first training seed's network.\n")  # fmt: skip
    first = per_seed[0]
    for tile in TILES:
        print(f"#### {tile}x{tile} tiles\n")
        rows = []
        for bits in ADC_BITS:
            ideal, wired = first[tile, 0.0][bits], first[tile, WIRE_OHM][bits]
            totals = ideal[1].totals()
            wire_change = ", ".join(f"{100 * (r[tile, WIRE_OHM][bits][0].mean() - r[tile, 0.0][bits][0].mean()):.1f}" for r in per_seed)
            rows.append([bits, studylib.chips_cell([r[tile, 0.0][bits][0] for r in per_seed]),
                         studylib.chips_cell([r[tile, WIRE_OHM][bits][0] for r in per_seed]), wire_change,
                         f"{ideal[1].energy_pj * 1e-3:.3g}", f"{ideal[1].latency_ns * 1e-3:.3g}", f"{ideal[1].area_um2 * 1e-6:.3g}",
                         int(totals["tiles"]), f"{totals['adc_conversions']:.4g}", f"{wired[2]:.3f}"])  # fmt: skip
        print(studylib.markdown_table(["ADC bits", "accuracy, ideal wires", f"accuracy, {WIRE_OHM:g} ohm/segment",
                                       "wires - ideal, per seed (points)", "energy nJ", "latency us", "area mm²", "tiles",
                                       "ADC conversions", "wire delta"], rows))  # fmt: skip
        print()
    pooled = {case: {bits: (np.concatenate([r[case][bits][0] for r in per_seed]), *first[case][bits][1:]) for bits in ADC_BITS}
              for case in cases}  # fmt: skip
    path = plot(pooled, args.plot)
    print(studylib.environment_line(env, clock.seconds()))
    record = {"float_accuracy": dict(zip(seeds, floats)),
              "accuracy": [{"seed": seed, "tile": tile, "wire_ohm": wire, "adc_bits": bits, "chips": r[tile, wire][bits][0]}
                           for seed, r in zip(seeds, per_seed) for tile, wire in cases for bits in ADC_BITS]}  # fmt: skip
    written = studylib.write_json(args.json, "cost_tradeoff_digits", args, env, clock.seconds(), record)
    print(f"plot: {path}; per-seed results: {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
