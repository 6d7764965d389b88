"""``xbarsim bench tile``: MVMs per second of a TileArray against a clean float32 GEMM."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numba
import numpy as np

from ..config import ChipConfig
from ..crossbar.tile import TileArray
from .timing import paired_timing

_CONVERTERS_8BIT = {
    "tile.dac": {"bits": 8, "range": "dynamic"},
    "tile.adc": {"bits": 8, "range": "fixed", "bound": 10.0},
}

CASES: dict[str, dict] = {
    "ideal": {},
    "8-bit DAC/ADC": _CONVERTERS_8BIT,
    "8-bit + additive read noise (output_referred)": {
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "additive", "sigma": 0.5},
        "tile.out_noise": 0.04,
    },
    "8-bit + PCM read noise (output_referred)": {
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "pcm"},
        "tile.out_noise": 0.04,
    },
    "8-bit + PCM read noise (per_device)": {
        **_CONVERTERS_8BIT,
        "device.read_noise": {"kind": "pcm"},
        "tile.out_noise": 0.04,
        "tile.read_noise_path": "per_device",
    },
}


@dataclass
class TileBenchRow:
    case: str
    tile: int
    batch: int
    mvm_per_s: float
    gemm_mvm_per_s: float
    ratio: float


def run(size: int = 512, tiles: tuple[int, ...] = (256, 512), batches: tuple[int, ...] = (1, 32, 256),
        cases: tuple[str, ...] | None = None, min_seconds: float = 0.3, progress=None) -> list[TileBenchRow]:  # fmt: skip
    """Benchmark every (case, tile size, batch) on a ``size`` x ``size`` weight matrix."""
    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    w_t = np.ascontiguousarray(weights.T)
    rows = []
    for name in cases or tuple(CASES):
        for tile in tiles:
            cfg = ChipConfig.preset("ideal").with_values({"tile.rows": tile, "tile.cols": tile, **CASES[name]})
            array = TileArray.from_weights(weights, cfg, seed=1)
            for batch in batches:
                x = rng.standard_normal((batch, size)).astype(np.float32)
                out = np.empty((batch, size), np.float32)
                t_tile, t_gemm = paired_timing(lambda: array.mvm(x), lambda: np.matmul(x, w_t, out=out), min_seconds)
                rows.append(TileBenchRow(name, tile, batch, batch / t_tile, batch / t_gemm, t_gemm / t_tile))
                if progress is not None:
                    progress(rows[-1])
    return rows


def format_table(rows: list[TileBenchRow]) -> str:
    head = f"{'case':<46} {'tile':>5} {'batch':>5} {'MVM/s':>12} {'GEMM MVM/s':>12} {'ratio':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.case:<46} {r.tile:>5} {r.batch:>5} {r.mvm_per_s:>12,.0f} {r.gemm_mvm_per_s:>12,.0f} {r.ratio:>6.2f}")
    return "\n".join(lines)


def write_json(rows: list[TileBenchRow], path: Path) -> None:
    meta = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": _threading_layer(),
        "numpy": np.__version__,
        "numba": numba.__version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))


def _threading_layer() -> str:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return "not started"
