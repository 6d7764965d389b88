"""Cross-check of the measured-chip presets (hermes, neurram, reram-cmo) against aihwkit 1.1.0's noise models.

Runs in the venv of ``benchmarks/fidelity_venv.sh``, beside ``fidelity_aihwkit.py`` (whose helpers it shares):

    /work/venv-aihwkit/bin/python benchmarks/fidelity_chips.py [--quick] [--out bench-results/fidelity_chips.json]

aihwkit side: ``HermesNoiseModel()``; ``ReRamWan2022NoiseModel`` with NeuRRAM's 1-40 uS (``g_max=40``, so that its
40-uS fit is read in g/40; a pair converter with g_min 1 uS); ``ReRamCMONoiseModel(acceptance_range=2)`` (the 2% fit,
which its default 2e-2 never selects) on a differential pair of 9-88.2 uS (aihwkit maps one device per weight; the
pair is xbarsim's mapping, so both sides map alike; the device-level section compares the physics per device).

Sections:
  1. weights per |w| bin at each time: mean and std of (realized - w) sign(w) / max|w| of a 512x512 layer read
     through an ideal periphery, no compensation, 3 programmings. Two aihwkit columns: its tile (what an aihwkit user
     gets) and its noise model applied to the conductances with the converter's scale kept (``BaseNoiseModel
     .apply_drift_noise`` re-derives the scale from the programmed weights: base.py lines 117-125). One more xbarsim
     column for the presets that program and verify: the preset programmed in one shot with the source's fitted
     spread instead (hermes; neurram with ``starts_from: first_fit``, the relaxation grown from that fit). For hermes
     one more aihwkit column: its model with the cell's programming error drawn on the two devices and clamped at 0 on
     each (aihwkit clamps the cell's sum: hermes.py line 172, ``g_prog.clamp_(min=0.0)``); a bin that misses aihwkit's
     model but agrees with this one is EXPLAINED (docs/physics.md §2b).
  2. reram-cmo per device: G(t) - G_target per target level, aihwkit's conductance functions against xbarsim's laws.
  3. program-and-verify (hermes, neurram): residual, convergence and pulses of xbarsim's loop, over the layer and per
     target level beside the source's fitted spread per device.
  4. a LeNet-5 on scikit-learn digits: accuracy over chips at each time, aihwkit's tile configured as the preset
     (8-bit DAC and ADC, bound 10, output noise 0.04, column scaling, 256x256 tiles, no bound management).
ReRamWan2022NoiseModel evaluates only at its fitted times (1 s, 1 d, 2 d; reram.py line 158 raises otherwise): its
programmed weights are its 1 s state; xbarsim's 1 h and 1 y have no aihwkit counterpart (n/a).
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch  # before xbarsim (Numba and torch thread pools)

from fidelity_aihwkit import (  # the shared helpers
    IDEAL_CONVERTER, TOLERANCE, YEAR, RPUConfig, bin_statistics, finish, run_arguments, unit_max_weights, xbarsim_layer,
)
from fit_verify import loop_levels

from aihwkit.inference import GlobalDriftCompensation
from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
from aihwkit.inference.noise.hermes import HermesNoiseModel
from aihwkit.inference.noise.reram import ReRamCMONoiseModel, ReRamWan2022NoiseModel
from aihwkit.nn import AnalogLinear
from aihwkit.nn.conversion import convert_to_analog
from aihwkit.simulator.parameters.enums import BoundManagementType
from tqdm import tqdm

import xbarsim
from xbarsim import ChipConfig, map_model
from xbarsim.crossbar.laws import device
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig, accuracy, train

HOUR, DAY = 3600.0, 86400.0
BINS = 8
PER_DEVICE = "aihwkit model, clamped per device"


def cmo_model() -> ReRamCMONoiseModel:
    model = ReRamCMONoiseModel(acceptance_range=2)
    model.g_converter = SinglePairConductanceConverter(g_max=model.g_max, g_min=model.g_min)  # xbarsim's pair
    return model


@dataclass(frozen=True)
class Chip:
    preset: str
    noise_model: object  # a callable building aihwkit's model
    times: tuple  # (label, seconds, aihwkit evaluates it)
    cnn_time: tuple  # (label, seconds) of the CNN comparison
    compensation: bool
    one_shot: dict | None = None  # the preset programmed in one shot with its fit (None: it is one-shot already)
    devices: int = 1  # devices per polarity: >1 adds aihwkit's model with the programming error clamped per device


CHIPS = {
    "hermes": Chip("hermes", HermesNoiseModel, (("0", 0.0, True), ("1 h", HOUR, True), ("1 d", DAY, True), ("1 y", YEAR, True)),
                   ("1 y", YEAR), True, {"programming": {"method": "one_shot"}}, 2),
    "neurram": Chip("neurram", lambda: ReRamWan2022NoiseModel(g_converter=SinglePairConductanceConverter(g_max=40.0, g_min=1.0), g_max=40.0),
                    (("1 s", 1.0, True), ("1 h", HOUR, False), ("1 d", DAY, True), ("2 d", 2 * DAY, True), ("1 y", YEAR, False)),
                    ("2 d", 2 * DAY), False, {"programming": {"method": "one_shot"}, "device.drift.starts_from": "first_fit"}),
    "reram-cmo": Chip("reram-cmo", cmo_model, (("0", 0.0, True), ("1 h", HOUR, True), ("1 d", DAY, True), ("1 y", YEAR, True)),
                      ("1 y", YEAR), False),
}  # fmt: skip
DEVICE_ONLY = {"tile.dac": IDEAL_CONVERTER, "tile.adc": IDEAL_CONVERTER, "tile.out_noise": 0.0, "drift_compensation": "none",
               "tile.rows": 512, "tile.cols": 512, "mapping.weight_scale": "tile"}  # fmt: skip


def programmed_only(chip: Chip, t: float) -> bool:
    """aihwkit's Wan model: its programmed state is its 1 s state (its drift refuses t = 0)."""
    return chip.preset == "neurram" and t == 1.0


# ---------------------------------------------------------------- weights
def aihwkit_tile_weights(chip: Chip, w: np.ndarray, t: float, seed: int) -> np.ndarray:
    cfg = RPUConfig()
    cfg.noise_model = chip.noise_model()
    cfg.drift_compensation = None
    cfg.forward.is_perfect = True
    torch.manual_seed(seed)
    layer = AnalogLinear(w.shape[1], w.shape[0], bias=False, rpu_config=cfg)
    layer.set_weights(torch.from_numpy(w))
    layer.eval()
    layer.program_analog_weights()
    if not programmed_only(chip, t):
        layer.drift_analog_weights(t)
    with torch.no_grad():
        return layer(torch.eye(w.shape[1])).numpy().T


def aihwkit_model_weights(chip: Chip, w: np.ndarray, t: float, seed: int, per_device: bool = False) -> np.ndarray:
    """aihwkit's noise model on the converter's conductances, converted back with the same scale; ``per_device``: the
    cell's programming error drawn on its ``chip.devices`` devices (each the target / N, aihwkit's std / sqrt(N)) and
    clamped at 0 on each, as two real devices are, instead of on the cell's sum."""
    model = chip.noise_model()
    torch.manual_seed(seed)
    targets, params = model.g_converter.convert_to_conductances(torch.from_numpy(w))
    n = chip.devices if per_device else 1
    if per_device:  # clamp(T + sqrt(N) s z, 0) / N: each device's T / N + s z / sqrt(N), clamped at 0
        model.prog_noise_scale *= np.sqrt(n)
    realized = []
    for g_target in targets:
        g = sum(model.apply_programming_noise_to_conductance(g_target) for _ in range(n)) / n
        if not programmed_only(chip, t):
            g = model.apply_drift_noise_to_conductance(g, model.generate_drift_coefficients(g_target), t)
        realized.append(g)
    return model.g_converter.convert_back_to_weights(realized, params).numpy()


def _agrees(ours: dict, ref: dict) -> bool:
    return (abs(ours["mean"] - ref["mean"]) <= TOLERANCE["weights"] * max(abs(ref["mean"]), ref["std"])
            and abs(ours["std"] - ref["std"]) <= TOLERANCE["weights"] * ref["std"])  # fmt: skip


def weight_section(chip: Chip, w: np.ndarray, seeds: list[int], bar) -> tuple[list[dict], dict]:
    """Per time and |w| bin: aihwkit's tile, aihwkit's model (scale kept), xbarsim, and xbarsim programmed in one shot
    with the source's fit instead of its verify loop; and xbarsim's verify report."""
    cfg = ChipConfig.preset(chip.preset).with_values(DEVICE_ONLY)
    configs = {"xbarsim": cfg} if chip.one_shot is None else {"xbarsim": cfg, "xbarsim one-shot": cfg.with_values(chip.one_shot)}
    eye = np.eye(w.shape[1], dtype=np.float32)
    rows = []
    for label, t, in_aihwkit in chip.times:
        realized = {side: [xbarsim_layer(c, w, eye, [t], seed)[0].T for seed in seeds] for side, c in configs.items()}
        if in_aihwkit:
            realized["aihwkit tile"] = [aihwkit_tile_weights(chip, w, t, seed) for seed in seeds]
            realized["aihwkit model"] = [aihwkit_model_weights(chip, w, t, seed) for seed in seeds]
            if chip.devices > 1:
                realized[PER_DEVICE] = [aihwkit_model_weights(chip, w, t, seed, per_device=True) for seed in seeds]
        bar.update()
        stats = {k: bin_statistics(np.concatenate(v), np.concatenate([w] * len(seeds)), BINS) for k, v in realized.items()}
        for k in range(BINS):
            row = {"chip": chip.preset, "time": label, "bin": stats["xbarsim"][k]["bin"], **{side: s[k] for side, s in stats.items()}}
            for side in ("aihwkit tile", "aihwkit model"):
                row[f"status vs {side}"] = ("PASS" if _agrees(row["xbarsim"], row[side]) else "MISS") if side in row else "n/a"
            explained = PER_DEVICE in row and _agrees(row["xbarsim"], row[PER_DEVICE])
            if row["status vs aihwkit model"] == "MISS" and explained:
                row["status vs aihwkit model"] = "EXPLAINED"  # the clamp on the cell's sum (module doc)
            if "xbarsim one-shot" in row:
                row["one-shot vs aihwkit model"] = ("PASS" if _agrees(row["xbarsim one-shot"], row["aihwkit model"]) else "MISS") if "aihwkit model" in row else "n/a"
            rows.append(row)
    tiles = xbarsim.TileArray.from_weights(w, cfg, seeds[0])
    return rows, tiles.programming_report()


# ---------------------------------------------------------------- reram-cmo per device
def cmo_device_section(seeds: list[int], bar) -> list[dict]:
    """G(t) - G_target per target level (uS): aihwkit's conductance functions and xbarsim's device laws."""
    model, dev = cmo_model(), ChipConfig.preset("reram-cmo").device
    edges = np.linspace(dev.g_min_us, dev.g_max_us, BINS + 1)
    levels = (edges[:-1] + edges[1:]) / 2
    g_target = np.repeat(levels, 20000).astype(np.float32)
    rows = []
    for label, t, _ in CHIPS["reram-cmo"].times:
        errors = {"aihwkit": [], "xbarsim": []}
        for seed in seeds:
            torch.manual_seed(seed)
            target = torch.from_numpy(g_target)
            g = model.apply_drift_noise_to_conductance(model.apply_programming_noise_to_conductance(target), target, t)
            errors["aihwkit"].append(g.numpy() - g_target)
            pair = np.stack([g_target, g_target])[:, None, :]
            g_prog, stuck = device.program(pair, dev, seed)
            now = device.drifted(g_prog, stuck, dev, t, seed, pair)
            errors["xbarsim"].append((device.epoch_conductances(now, g_prog, dev, t, seed, 0)[0, 0] - g_target))
        bar.update()
        for k, level in enumerate(levels):
            row = {"chip": "reram-cmo (per device)", "time": label, "level_us": float(level)}
            for side, e in errors.items():
                e = np.concatenate([x.reshape(-1, 20000)[k] for x in e]).astype(np.float64)
                row[side] = {"mean": float(e.mean()), "std": float(e.std())}
            row["status"] = "PASS" if _agrees(row["xbarsim"], row["aihwkit"]) else "MISS"
            rows.append(row)
    return rows


# ---------------------------------------------------------------- verify per level
def verify_level_section(seed: int) -> list[dict]:
    """xbarsim's verify loop per target level (``fit_verify.loop_levels``: 16 levels, 2 x 128 x 128 pairs a level and
    device of the cell, every device's residual) beside the source's spread per device (HERMES's two-device fit over
    sqrt(2), clamped at 0; NeuRRAM's fit at 1 s, which includes the first second's relaxation)."""
    return [{"chip": name, **row} for name in ("hermes", "neurram") for row in loop_levels(ChipConfig.preset(name), seed, 128)]


# ---------------------------------------------------------------- CNN
def chip_rpu_config(chip: Chip):
    """aihwkit's tile as the preset's periphery: 8-bit abs-max DAC, 8-bit ADC (254 steps) with bound 10, output noise
    0.04, column-wise weight scaling, 256x256 tiles, no bound management, digital bias."""
    cfg = RPUConfig()
    cfg.noise_model = chip.noise_model()
    cfg.drift_compensation = GlobalDriftCompensation() if chip.compensation else None
    cfg.mapping.weight_scaling_omega, cfg.mapping.weight_scaling_columnwise = 1.0, True
    cfg.mapping.max_input_size = cfg.mapping.max_output_size = 256
    cfg.forward.inp_res = cfg.forward.out_res = 1 / (2**8 - 2)
    cfg.forward.out_bound, cfg.forward.out_noise = 10.0, 0.04
    cfg.forward.bound_management = BoundManagementType.NONE
    return cfg


def cnn_section(chips_n: int, epochs: int, bar) -> tuple[float, list[dict]]:
    split = data.digits()
    torch.manual_seed(0)
    model = zoo.build("lenet5", image_size=8)
    train(model, split, TrainConfig(epochs=epochs, lr=3e-3), progress=False)
    x, y = split.x_test, split.y_test
    rows = []
    for chip in CHIPS.values():
        label, t = chip.cnn_time
        analog = convert_to_analog(copy.deepcopy(model), chip_rpu_config(chip)).eval()
        ours = map_model(model, ChipConfig.preset(chip.preset))
        acc = {"aihwkit": [], "xbarsim": []}
        for k in range(chips_n):
            torch.manual_seed(1000 + k)
            analog.program_analog_weights()
            analog.drift_analog_weights(t)
            acc["aihwkit"].append(accuracy(analog, x, y))
            ours.chip.program(k)
            ours.chip.drift(t)
            acc["xbarsim"].append(accuracy(ours, x, y))
            bar.update()
        a, b = np.array(acc["aihwkit"]), np.array(acc["xbarsim"])
        pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
        ok = abs(a.mean() - b.mean()) <= TOLERANCE["accuracy_std"] * max(pooled, 1 / len(y))
        rows.append({"chip": chip.preset, "time": label, "aihwkit": {"mean": a.mean(), "std": a.std(ddof=1)},
                     "xbarsim": {"mean": b.mean(), "std": b.std(ddof=1)}, "status": "PASS" if ok else "MISS"})  # fmt: skip
    return accuracy(model, x, y), rows


# ---------------------------------------------------------------- report
def _cell(s: dict | None) -> str:
    return "n/a" if s is None else f"{s['mean']:+.4f} / {s['std']:.4f}"


def print_tables(report: dict) -> None:
    print("\n### Weight error along sign(w) per |w| bin (units of max|w|; mean / std), ideal periphery\n")
    print("| chip | time | |w| / max | aihwkit tile | aihwkit model, scale kept | xbarsim | vs tile | vs model | xbarsim one-shot | "
          "vs model | aihwkit model, clamped per device |\n|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for r in report["weights"]:
        cells = " | ".join(_cell(r.get(side)) for side in ("aihwkit tile", "aihwkit model", "xbarsim"))
        one_shot = f"{_cell(r['xbarsim one-shot'])} | {r['one-shot vs aihwkit model']}" if "xbarsim one-shot" in r else "n/a | n/a"
        status = f"{r['status vs aihwkit tile']} | {r['status vs aihwkit model']}"
        print(f"| {r['chip']} | {r['time']} | {r['bin']} | {cells} | {status} | {one_shot} | {_cell(r.get(PER_DEVICE))} |")
    print("\n### reram-cmo per device: G(t) - G_target (uS; mean / std)\n")
    print("| time | G_target (uS) | aihwkit | xbarsim | status |\n|---|---|---|---|---|")
    for r in report["cmo_devices"]:
        print(f"| {r['time']} | {r['level_us']:.1f} | {_cell(r['aihwkit'])} | {_cell(r['xbarsim'])} | {r['status']} |")
    print("\n### xbarsim's program-and-verify (per device, converged devices' residual)\n")
    print("| chip | converged | pulses a device | verify reads a device | residual mean (uS) | residual std (uS) |\n|---|---|---|---|---|---|")
    for name, v in report["verify"].items():
        print(f"| {name} | {v['converged']:.2%} | {v['pulses_mean']:.2f} | {v['verify_reads_mean']:.2f} | "
              f"{v['residual_mean_us']:+.3f} | {v['residual_std_us']:.3f} |")  # fmt: skip
    print("\n### xbarsim's program-and-verify per target level (per device, every device) beside the source's fitted spread\n")
    print("| chip | G_target (uS) | converged | pulses a device | residual mean (uS) | source mean (uS) | residual std (uS) | "
          "source std (uS) |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for v in report["verify_levels"]:
        print(f"| {v['chip']} | {v['level_us']:.2f} | {v['converged']:.2%} | {v['pulses_mean']:.2f} | {v['mean_us']:+.3f} | "
              f"{v['source_mean_us']:+.3f} | {v['std_us']:.3f} | {v['source_std_us']:.3f} |")  # fmt: skip
    print(f"\n### LeNet-5 on digits (float {100 * report['cnn_float_accuracy']:.1f}%), accuracy over chips\n")
    print("| chip | time | aihwkit | xbarsim | status |\n|---|---|---|---|---|")
    for r in report["cnn"]:
        a, b = r["aihwkit"], r["xbarsim"]
        print(f"| {r['chip']} | {r['time']} | {100 * a['mean']:.1f} ± {100 * a['std']:.1f}% | "
              f"{100 * b['mean']:.1f} ± {100 * b['std']:.1f}% | {r['status']} |")  # fmt: skip


def main() -> int:
    args, seeds, chips_n, epochs = run_arguments(__doc__.splitlines()[0], "bench-results/fidelity_chips.json")
    start = time.time()
    w = unit_max_weights(np.random.default_rng(0))

    units = sum(len(c.times) for c in CHIPS.values()) + len(CHIPS["reram-cmo"].times) + len(CHIPS) * chips_n
    report: dict = {"weights": [], "verify": {}}
    with tqdm(total=units, desc="fidelity chips", file=sys.stderr) as bar:
        for name, chip in CHIPS.items():
            rows, verify = weight_section(chip, w, seeds, bar)
            report["weights"] += rows
            if verify is not None:
                report["verify"][name] = verify
        report["cmo_devices"] = cmo_device_section(seeds, bar)
        report["verify_levels"] = verify_level_section(seeds[0])
        report["cnn_float_accuracy"], report["cnn"] = cnn_section(chips_n, epochs, bar)
    finish(report, args, start, {"seeds": seeds, "cnn_chips": chips_n, "cnn_epochs": epochs}, print_tables)
    return 0

if __name__ == "__main__":
    sys.exit(main())
