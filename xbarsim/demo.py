"""``xbarsim demo``: train LeNet-5 on scikit-learn's digits, map it onto PCM chips, and report
accuracy in float, on an ideal chip, after programming and after drift."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .config import ChipConfig
from .mapping.chip import map_model
from .models import data, zoo
from .models.checkpoint import save_checkpoint
from .models.training import TrainConfig, accuracy, train
from .sweeps.plots import plot_sweep
from .sweeps.runner import run_sweep
from .sweeps.spec import SweepSpec
from .sweeps.journal import journal_path
from .sweeps.store import read_results

DRIFT_TIMES = (("1 hour", 3600.0), ("1 day", 86400.0), ("1 year", 365.25 * 86400.0))


@dataclass
class DemoRow:
    label: str
    accuracies: list[float]

    @property
    def text(self) -> str:
        text = f"{100 * np.mean(self.accuracies):6.2f}%"
        if len(self.accuracies) > 1:
            text += f" ± {100 * np.std(self.accuracies, ddof=1):.2f}%"
        return text


def run(epochs: int = 40, chips: int = 5, preset: str = "pcm", seed: int = 0, progress: bool = True,
        output: Path | None = None) -> tuple[list[DemoRow], str, list[Path]]:  # fmt: skip
    """Returns the table rows, the chip layout (a titled layer table: how the network sits on the
    chip's tiles) and the sweep's files (written under ``output``)."""
    torch.manual_seed(seed)
    digits = data.digits(seed)
    model = zoo.build("lenet5", in_channels=1, num_classes=10, image_size=8)
    train(model, digits, TrainConfig(epochs=epochs, seed=seed), progress=progress)
    x, y = digits.x_test, digits.y_test
    rows = [DemoRow("float32 (torch)", [accuracy(model, x, y)])]
    rows.append(DemoRow("ideal chip", [accuracy(map_model(model, ChipConfig.preset("ideal")), x, y)]))
    chip = map_model(model, ChipConfig.preset(preset), seed=seed)
    timeline: dict[str, list[float]] = {"after programming": []} | {f"drift {label}": [] for label, _ in DRIFT_TIMES}
    for k in tqdm(range(chips), desc=f"{preset} chips", unit="chip", disable=not progress, file=sys.stderr):
        chip.program(seed + k)
        timeline["after programming"].append(accuracy(chip, x, y))
        for label, t_s in DRIFT_TIMES:
            chip.drift(t_s)
            timeline[f"drift {label}"].append(accuracy(chip, x, y))
    rows += [DemoRow(f"{preset}, {label}", values) for label, values in timeline.items()]
    files = sweep_read_noise_and_adc(model, preset, seed, output or Path("xbarsim-demo"), progress)
    layout = (f"How LeNet-5 sits on a '{preset}' chip: each layer's weight matrix, the tiles it takes and the "
              f"devices that hold it (the same for all {chips} chips below; the last one programmed is shown).")  # fmt: skip
    return rows, layout + "\n" + chip.summary(), files


def sweep_read_noise_and_adc(model, preset: str, seed: int, output: Path, progress: bool) -> list[Path]:
    """A small sweep (read noise x ADC bits, 3 chips a point) of the trained model: store, report, plots."""
    output.mkdir(parents=True, exist_ok=True)
    checkpoint = output / "lenet5_digits.pt"
    save_checkpoint(model, checkpoint)
    spec = SweepSpec.model_validate({
        "name": "demo: read noise x ADC bits", "model": {"checkpoint": str(checkpoint)}, "data": "digits", "chip": preset,
        "axes": {"device.read_noise.scale": [0.5, 1, 2, 4, 8], "tile.adc.bits": [4, 6, 8]}, "repeats": 3, "seed": seed,
    })  # fmt: skip
    store = output / "sweep.h5"
    for stale in (store, journal_path(store)):  # a fresh demo each time (the model was retrained)
        stale.unlink(missing_ok=True)
    run_sweep(spec, store, executor="serial", progress=progress)
    results = read_results(store)
    return [store, *plot_sweep(results, output / "sweep.png")]


def format_table(rows: list[DemoRow], chips: int, preset: str) -> str:
    head = f"LeNet-5 on scikit-learn digits (test split), chip preset '{preset}': mean ± std over {chips} chips"
    lines = [head, f"{'':<28} accuracy"]
    lines += [f"{row.label:<28} {row.text}" for row in rows]
    return "\n".join(lines)
