"""``xbarsim bench model``: images per second of whole networks on a chip against torch float32."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..config import ChipConfig
from ..mapping.chip import map_model
from ..models import zoo
from .timing import paired_timing

MODELS = {
    "lenet5": lambda: zoo.build("lenet5", in_channels=3, num_classes=10, image_size=32),
    "vgg11": lambda: zoo.build("vgg11", in_channels=3, num_classes=10, image_size=32),
    "resnet18": lambda: zoo.build("resnet18", in_channels=3, num_classes=10),
}


@dataclass
class ModelBenchRow:
    model: str
    preset: str
    batch: int
    chip_images_per_s: float
    torch_images_per_s: float
    ratio: float
    map_program_s: float
    chip_file_mb: float


def run(models: tuple[str, ...] = tuple(MODELS), preset: str = "pcm", batch: int = 64, min_seconds: float = 2.0,
        progress=None) -> list[ModelBenchRow]:  # fmt: skip
    """Time each model on CIFAR-shaped random input (the data do not change the work)."""
    rows = []
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for name in models:
        torch.manual_seed(0)
        network = MODELS[name]().eval()
        start = time.perf_counter()
        chip = map_model(network, ChipConfig.preset(preset), seed=0)
        map_seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "chip.h5"
            chip.save(path)
            size_mb = os.path.getsize(path) / 1e6
        with torch.no_grad():
            t_chip, t_torch = paired_timing(lambda: chip(x), lambda: network(x), min_seconds, calls_per_round=1, max_rounds=20)
        rows.append(ModelBenchRow(name, preset, batch, batch / t_chip, batch / t_torch, t_torch / t_chip, map_seconds, size_mb))
        if progress is not None:
            progress(rows[-1])
    return rows


def format_table(rows: list[ModelBenchRow]) -> str:
    head = f"{'model':<10} {'preset':<8} {'batch':>5} {'chip img/s':>11} {'torch img/s':>12} {'ratio':>6} {'map+program':>12} {'chip file':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.model:<10} {r.preset:<8} {r.batch:>5} {r.chip_images_per_s:>11,.0f} {r.torch_images_per_s:>12,.0f} "
                     f"{r.ratio:>6.2f} {r.map_program_s:>11.2f}s {r.chip_file_mb:>8.1f}MB")  # fmt: skip
    return "\n".join(lines)


def write_json(rows: list[ModelBenchRow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"torch_threads": torch.get_num_threads(), "rows": [asdict(r) for r in rows]}, indent=2))
