"""``xbarsim bench model``: whole networks on a chip against torch float32 inference.

For each network, torch runs first, alone in a fresh process with its default threading (no
xbarsim kernel loaded); then the chip runs in another fresh process, torch imported before
xbarsim as in a user's script. Each reports its cold first call and its warm calls apart.
On a GPU (``device="cuda"``) both run there (torch with its default settings), every timed call
waiting for the GPU to finish.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .process import run_job
from .workloads import DEFAULT_MODELS, describe

SEQUENCE_BATCH = {"chargpt": 32}  # sequences per forward of the language model (the CNNs and the ViT take ``batch``)


@dataclass
class ModelBenchRow:
    model: str
    workload: str
    preset: str
    device: str  # where both ran ("cpu", "cuda", ...)
    backend: str  # the chip's tile backend (numba, torch)
    batch: int
    chip_items_per_s: float  # warm; items = images, or sequences for the LSTM and chargpt
    torch_items_per_s: float  # warm, torch alone in its own process
    ratio: float  # chip / torch, warm
    chip_cold_s: float  # the chip's first forward in a fresh process
    torch_cold_s: float
    map_program_cold_s: float  # the first map + program of the process (kernels loaded or compiled)
    map_program_s: float  # the same again, warm
    drift_s: float  # the programmed chip to a new time (one day), with drift compensation's probe read
    program_seed_s: float  # every device programmed again with a new seed
    save_s: float  # the chip file of the drifted chip
    load_s: float
    chip_file_mb: float


SET_UP = ("map_program_cold_s", "map_program_s", "drift_s", "program_seed_s", "save_s", "load_s", "chip_file_mb")


def run(models: tuple[str, ...] = DEFAULT_MODELS, preset: str = "pcm", batch: int = 64, lstm_batches: tuple[int, ...] = (32, 1),
        min_seconds: float = 2.0, import_order: str = "torch", progress=None, device: str = "cpu",
        backend: str | None = None) -> dict:  # fmt: skip
    """Returns {"rows": [ModelBenchRow as dict], "conditions": {"<model> batch <b>": {"chip": ..., "torch": ...}}}."""
    rows, conditions = [], {}
    for name in models:
        for b in lstm_batches if name == "lstm" else (SEQUENCE_BATCH.get(name, batch),):
            params = {"model": name, "batch": b, "preset": preset, "seconds": min_seconds, "device": device, "backend": backend}
            torch_run = run_job("torch_model", params, "torch-only")
            chip_run = run_job("chip_model", params, import_order)
            rows.append(ModelBenchRow(name, describe(name), preset, chip_run["device"], chip_run["backend"], b, b / chip_run["warm_s"],
                                      b / torch_run["warm_s"],
                                      torch_run["warm_s"] / chip_run["warm_s"], chip_run["cold_s"], torch_run["cold_s"],
                                      *(chip_run[key] for key in SET_UP)))  # fmt: skip
            conditions[f"{name} batch {b}"] = {"chip": chip_run["conditions"], "torch": torch_run["conditions"]}
            if progress is not None:
                progress(rows[-1])
    return {"rows": [asdict(r) for r in rows], "conditions": conditions}


def format_table(result: dict) -> str:
    """Two tables: the forward's speed against torch, then the chip's set-up steps."""
    head = (f"{'model':<9} {'preset':<6} {'device':<7} {'backend':<7} {'batch':>5} {'chip /s':>9} {'torch /s':>9} {'ratio':>6} "
            f"{'chip cold':>10} {'torch cold':>10}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['model']:<9} {r['preset']:<6} {r['device']:<7} {r['backend']:<7} {r['batch']:>5} {r['chip_items_per_s']:>9,.1f} "
                     f"{r['torch_items_per_s']:>9,.1f} {r['ratio']:>6.3f} {r['chip_cold_s']:>9.2f}s {r['torch_cold_s']:>9.2f}s")  # fmt: skip
    head = (f"{'model':<9} {'batch':>5} {'map+prog cold':>14} {'map+prog':>9} {'drift':>7} {'new seed':>9} "
            f"{'save':>7} {'load':>7} {'file':>8}")  # fmt: skip
    lines += ["", "set-up (drift: to one day; save and load: the drifted chip)", head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['model']:<9} {r['batch']:>5} {r['map_program_cold_s']:>13.2f}s {r['map_program_s']:>8.2f}s {r['drift_s']:>6.2f}s "
                     f"{r['program_seed_s']:>8.2f}s {r['save_s']:>6.2f}s {r['load_s']:>6.2f}s {r['chip_file_mb']:>6.1f}MB")  # fmt: skip
    return "\n".join(lines)


def write_json(result: dict, path: Path, import_order: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "model", "import_order": import_order,
               "baseline": "torch float32, alone in its own process, default threads", **result}  # fmt: skip
    path.write_text(json.dumps(payload, indent=2))

