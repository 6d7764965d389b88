"""Benchmark jobs, each run in a fresh Python process started by ``bench.process``.

``python -c "<imports>; from xbarsim.bench.worker import main; main()" JOB PARAMS_JSON`` prints one
JSON line. The chip jobs time the first call of the process apart (cold: Numba loads its cached
kernels, or compiles them) from the steady state (warm). The torch job never loads Numba.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .timing import paired_timing, steady_seconds
from .workloads import MODELS, TILE_CASES, model_input

DRIFT_TIME_S = 86400.0  # the set-up benchmark drifts a freshly programmed chip to one day


def conditions(device=None) -> dict:
    """What the numbers depend on: versions, threads, import order, machine, load, date, and on a GPU its name."""
    import torch

    info = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "imported_first": _first_of(("torch", "xbarsim.crossbar.tile")),
        "numba_loaded": "numba" in sys.modules,
    }
    if device is not None and device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)  # fmt: skip
    if "numba" in sys.modules:
        import numba

        from ..crossbar.jit import cache_stats

        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel region ran
            layer = f"{numba.config.THREADING_LAYER} (not started)"
        info.update(numba=numba.__version__, numba_threads=numba.config.NUMBA_NUM_THREADS, numba_threading_layer=layer,
                    numba_kernels=cache_stats())  # fmt: skip
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
                        for p in threadpool_info() if p.get("user_api") == "blas"]  # fmt: skip
    except ImportError:
        pass
    return info


def _first_of(modules: tuple[str, ...]) -> str:
    """Which of ``modules`` was imported first in this process (dicts keep insertion order)."""
    loaded = [name for name in sys.modules if name in modules]
    return loaded[0] if loaded else "neither"


def _cold(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def _finished(func: Callable[[], object], device) -> Callable[[], object]:
    """``func`` and then a wait for ``device`` to finish its work (a GPU runs asynchronously)."""
    import torch

    if device.type != "cuda":
        return func
    return lambda: (func(), torch.cuda.synchronize(device))


def tile_job(params: dict) -> dict:
    """One tile case: cold first MVM (setup + first call), then warm ratios to a NumPy GEMM."""
    from ..config import ChipConfig
    from ..crossbar.tile import TileArray

    case = TILE_CASES[params["case"]]
    weights, inputs = case.workload(params["size"], params["batches"])
    w_t = np.ascontiguousarray(weights.T)
    rows, cold = [], {}
    for tile in params["tiles"]:
        cfg = ChipConfig.preset(case.preset).with_values({"tile.rows": tile, "tile.cols": tile, **case.values})
        start = time.perf_counter()
        array = TileArray.from_weights(weights, cfg, seed=1)
        first_batch = max(params["batches"])
        array.mvm(inputs[first_batch])
        cold.setdefault("first_mvm_s", time.perf_counter() - start)  # the process's very first call
        cold.setdefault("first_mvm_batch", first_batch)
        for batch, x in inputs.items():
            t_tile, t_gemm = _tile_against_gemm(array, x, w_t, params["seconds"])
            rows.append({"case": params["case"], "tile": tile, "batch": batch, "mvm_per_s": batch / t_tile,
                         "gemm_mvm_per_s": batch / t_gemm, "ratio": t_gemm / t_tile})  # fmt: skip
    return {"rows": rows, "cold": cold, "conditions": conditions()}


def _tile_against_gemm(array, x: np.ndarray, w_t: np.ndarray, min_seconds: float) -> tuple[float, float]:
    """Seconds per call of (array.mvm(x), the clean GEMM x @ w_t), alternating rounds."""
    out = np.empty((x.shape[0], w_t.shape[1]), np.float32)
    return paired_timing(lambda: array.mvm(x), lambda: np.matmul(x, w_t, out=out), min_seconds)


def chip_model_job(params: dict) -> dict:
    """A network on a chip: its set-up steps (map + program, cold and warm; drift to a new time;
    save; load; program a new seed) and its forward, cold and warm."""
    import torch

    from ..config import ChipConfig
    from ..mapping.chip import map_model
    from ..mapping.chipload import load_chip

    network, x = _network_and_input(params)
    cfg = ChipConfig.preset(params["preset"])
    device, backend = params.get("device", "cpu"), params.get("backend")

    def mapped():
        return map_model(network, cfg, seed=0, progress=False, device=device, backend=backend)

    # the first map of the process loads (or compiles) the kernels; its chip is dropped at once
    set_up = {"map_program_cold_s": _cold(mapped)}
    start = time.perf_counter()
    chip = mapped()
    set_up["map_program_s"] = time.perf_counter() - start
    x = x.to(chip.device)
    with torch.no_grad():
        cold = _cold(_finished(lambda: chip(x), chip.device))
        warm = steady_seconds(_finished(lambda: chip(x), chip.device), params["seconds"])
    set_up["drift_s"] = _cold(_finished(lambda: chip.drift(DRIFT_TIME_S), chip.device))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chip.h5"
        set_up["save_s"] = _cold(lambda: chip.save(path, progress=False))
        set_up["chip_file_mb"] = path.stat().st_size / 1e6
        set_up["load_s"] = _cold(_finished(lambda: load_chip(path, progress=False, device=device, backend=backend), chip.device))
    set_up["program_seed_s"] = _cold(_finished(lambda: chip.program(1), chip.device))
    return {**set_up, "cold_s": cold, "warm_s": warm, "device": str(chip.device), "backend": chip.chip.backend.name,
            "conditions": conditions(chip.device)}  # fmt: skip


def torch_model_job(params: dict) -> dict:
    """The same network in float32 torch, with torch's default threading: cold and warm forward."""
    import torch

    network, x = _network_and_input(params)
    device = torch.device(params.get("device", "cpu"))
    network, x = network.to(device), x.to(device)
    with torch.no_grad():
        cold = _cold(_finished(lambda: network(x), device))
        warm = steady_seconds(_finished(lambda: network(x), device), params["seconds"])
    return {"cold_s": cold, "warm_s": warm, "conditions": conditions(device)}


def _network_and_input(params: dict):
    import torch

    from ..models import zoo

    torch.manual_seed(0)
    zoo_name, kwargs = MODELS[params["model"]]
    return zoo.build(zoo_name, **kwargs).eval(), model_input(params["model"], params["batch"])


JOBS = {"tile": tile_job, "chip_model": chip_model_job, "torch_model": torch_model_job}


def main() -> None:
    job, params = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(JOBS[job](params)), flush=True)
