"""``xbarsim demo``: train LeNet-5 on scikit-learn's digits, map it onto PCM chips, and report
accuracy in float, on an ideal chip, after programming and after drift."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .config import ChipConfig
from .mapping.chip import map_model
from .models import data, zoo
from .models.training import TrainConfig, accuracy, train

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


def run(epochs: int = 40, chips: int = 5, preset: str = "pcm", seed: int = 0, progress: bool = True) -> tuple[list[DemoRow], str]:
    """Returns the table rows and the chip summary."""
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
    return rows, chip.summary()


def format_table(rows: list[DemoRow], chips: int, preset: str) -> str:
    head = f"LeNet-5 on scikit-learn digits (test split), chip preset '{preset}': mean ± std over {chips} chips"
    lines = [head, f"{'':<28} accuracy"]
    lines += [f"{row.label:<28} {row.text}" for row in rows]
    return "\n".join(lines)
