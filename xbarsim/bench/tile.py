"""``xbarsim bench tile``: MVMs per second of a TileArray against a clean float32 NumPy GEMM.

Every case runs in its own fresh process (torch imported first, as in a user's script, unless
told otherwise): its first MVM is the cold figure (Numba's cached kernels load, or compile), the
ratios to the GEMM, timed in alternating rounds in that process, are the warm ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from .process import run_job
from .workloads import TILE_CASES

CASES = tuple(TILE_CASES)


def run(size: int = 512, tiles: tuple[int, ...] = (256, 512), batches: tuple[int, ...] = (1, 32, 256),
        cases: tuple[str, ...] = CASES, min_seconds: float = 0.3, import_order: str = "torch", progress=None) -> dict:  # fmt: skip
    """Benchmark every (case, tile size, batch) on a ``size`` x ``size`` weight matrix.

    Returns {"rows": [...], "cold": [{case, first_mvm_s, first_mvm_batch}], "conditions": {...}}."""
    result: dict = {"rows": [], "cold": [], "conditions": None}
    for case in cases:
        params = {"case": case, "size": size, "tiles": list(tiles), "batches": list(batches), "seconds": min_seconds}
        job = run_job("tile", params, import_order)
        result["rows"] += job["rows"]
        result["cold"].append({"case": case, **job["cold"], "numba_kernels": job["conditions"].get("numba_kernels")})
        result["conditions"] = job["conditions"]
        if progress is not None:
            progress(case)
    return result


def format_table(result: dict) -> str:
    head = f"{'case':<52} {'tile':>5} {'batch':>5} {'MVM/s':>12} {'GEMM MVM/s':>12} {'ratio':>6}"
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['case']:<52} {r['tile']:>5} {r['batch']:>5} {r['mvm_per_s']:>12,.0f} {r['gemm_mvm_per_s']:>12,.0f} {r['ratio']:>6.2f}")
    lines += ["", "cold: first MVM in a fresh process (programming + kernel load or compile)"]
    for c in result["cold"]:
        kernels = c.get("numba_kernels") or {}
        lines.append(f"  {c['case']:<52} {c['first_mvm_s']:>7.3f} s at batch {c['first_mvm_batch']}"
                     f"  (kernels: {kernels.get('loaded', 0)} loaded from cache, {kernels.get('compiled', 0)} compiled)")  # fmt: skip
    return "\n".join(lines)


def write_json(result: dict, path: Path, import_order: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "tile", "import_order": import_order, "baseline": "numpy float32 GEMM in the same process", **result}
    path.write_text(json.dumps(payload, indent=2))
