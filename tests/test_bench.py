"""The benchmarks: fresh processes in the stated import order, torch alone, cold/warm, JSON."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from xbarsim.bench import model, worker
from xbarsim.bench.process import run_job
from xbarsim.bench.workloads import TILE_CASES
from xbarsim.cli import main
from xbarsim.config import ChipConfig
from xbarsim.crossbar.tile import TileArray

AIHWKIT_CASE = "aihwkit preset, bound management, W~N(0,1) x~U(-1,1)"


@pytest.mark.parametrize("order, first", [("torch", "torch"), ("xbarsim", "xbarsim.crossbar.tile")])
def test_bench_tile_writes_warm_rows_cold_figures_and_conditions(tmp_path, order, first):
    out = tmp_path / "tile.json"
    argv = ["bench", "tile", "--size", "64", "--tiles", "32", "64", "--batches", "1", "8", "--case", "ideal",
            "--seconds", "0", "--import-order", order, "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["import_order"] == order and result["conditions"]["imported_first"] == first
    # the ideal chip only multiplies, so no threaded kernel may have started the layer
    assert result["conditions"]["numba_threading_layer"].split()[0] == "workqueue"
    assert sorted((r["tile"], r["batch"]) for r in result["rows"]) == [(32, 1), (32, 8), (64, 1), (64, 8)]
    assert all(r["ratio"] > 0 and r["mvm_per_s"] > 0 for r in result["rows"])
    (cold,) = result["cold"]
    assert cold["case"] == "ideal" and cold["first_mvm_s"] > 0 and cold["first_mvm_batch"] == 8
    assert sum(cold["numba_kernels"].values()) > 0  # the kernels it used were loaded or compiled


def test_the_torch_baseline_runs_alone_without_xbarsim_kernels():
    result = run_job("torch_model", {"model": "lenet5", "batch": 2, "seconds": 0}, "torch-only")
    assert result["conditions"]["numba_loaded"] is False and result["conditions"]["imported_first"] == "torch"
    assert result["cold_s"] > 0 and result["warm_s"] > 0


def test_a_chip_model_job_reports_set_up_cold_and_warm_figures():
    result = worker.chip_model_job({"model": "lstm", "batch": 1, "preset": "pcm", "seconds": 0})
    assert result["cold_s"] > 0 and result["warm_s"] > 0
    for key in ("map_program_cold_s", "map_program_s", "drift_s", "program_seed_s", "save_s", "load_s"):
        assert result[key] > 0, key
    assert result["chip_file_mb"] > 1  # 2x256 LSTM: 4 matrices of about 1 M weights between them


def test_a_chip_model_job_runs_the_torch_backend():
    result = worker.chip_model_job({"model": "lenet5", "batch": 2, "preset": "pcm", "seconds": 0, "backend": "torch"})
    assert (result["device"], result["backend"]) == ("cpu", "torch") and result["warm_s"] > 0 and result["load_s"] > 0


@pytest.mark.parametrize("name, batch", [("vit", 2), ("chargpt", 2)])
def test_the_transformers_run_as_benchmark_jobs(name, batch):
    chip = worker.chip_model_job({"model": name, "batch": batch, "preset": "pcm", "seconds": 0})
    alone = run_job("torch_model", {"model": name, "batch": batch, "seconds": 0}, "torch-only")
    assert chip["warm_s"] > 0 and alone["warm_s"] > 0 and chip["chip_file_mb"] > 0.5


def test_the_model_table_shows_the_set_up_steps():
    row = {"model": "resnet18", "workload": "3x32x32 images", "preset": "pcm", "device": "cuda:0", "backend": "torch", "batch": 64,
           "chip_items_per_s": 10.0,
           "torch_items_per_s": 200.0, "ratio": 0.05, "chip_cold_s": 3.0, "torch_cold_s": 0.5, "map_program_cold_s": 4.25,
           "map_program_s": 1.5, "drift_s": 0.75, "program_seed_s": 1.25, "save_s": 0.5, "load_s": 2.5, "chip_file_mb": 45.2}
    table = model.format_table({"rows": [row]})
    assert "set-up" in table and "new seed" in table and "cuda:0  torch" in table
    assert "4.25s" in table and "0.75s" in table and "1.25s" in table and "2.50s" in table and "45.2MB" in table


def test_unknown_benchmark_models_and_cases_are_refused(capsys):
    assert main(["bench", "model", "--models", "alexnet"]) == 2
    assert main(["bench", "tile", "--case", "quantum"]) == 2
    assert "alexnet" in capsys.readouterr().err


def test_tile_workloads_are_seeded_and_of_their_kind():
    weights, inputs = TILE_CASES["ideal"].workload(400, [1, 300])
    again, _ = TILE_CASES["ideal"].workload(400, [1, 300])
    assert np.array_equal(weights, again) and weights.dtype == np.float32
    assert abs(weights.std() * np.sqrt(400) - 1) < 0.02 and abs(inputs[300].std() - 1) < 0.02
    assert inputs[300].min() < -3 and inputs[1].shape == (1, 400)
    weights, inputs = TILE_CASES[AIHWKIT_CASE].workload(400, [300])
    assert abs(weights.std() - 1) < 0.02
    x = inputs[300]
    assert x.min() >= -1 and x.max() <= 1 and abs(x.var() - 1 / 3) < 0.01  # U(-1, 1)


def test_the_aihwkit_tile_case_saturates_and_re_reads():
    """The case exists to time bound management: on its workload the aihwkit preset's ADC saturates, so
    the tile re-reads vectors; the job reports it like every case."""
    case = TILE_CASES[AIHWKIT_CASE]
    weights, inputs = case.workload(256, [64])
    cfg = ChipConfig.preset(case.preset).with_values({"tile.rows": 256, "tile.cols": 256, **case.values})
    assert cfg.tile.bound_management == "iterative"
    array = TileArray.from_weights(weights, cfg, seed=1)
    array.mvm(inputs[64])
    assert array.bm_rereads > 0
    result = worker.tile_job({"case": AIHWKIT_CASE, "size": 256, "tiles": [256], "batches": [1, 64], "seconds": 0})
    assert [(r["tile"], r["batch"]) for r in result["rows"]] == [(256, 1), (256, 64)]
    assert all(r["ratio"] > 0 for r in result["rows"])


def _bench_all():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_all.py"
    spec = importlib.util.spec_from_file_location("bench_all", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tile_row(case, tile, batch, ratio, mvm_per_s=1000.0):
    return {"case": case, "tile": tile, "batch": batch, "ratio": ratio, "mvm_per_s": mvm_per_s, "gemm_mvm_per_s": mvm_per_s / ratio}


def test_bench_all_writes_the_readme_tables_from_the_benches_json():
    bench_all = _bench_all()
    tile = {"rows": [_tile_row("ideal", 512, 1, 0.91), _tile_row("ideal", 512, 256, 0.95), _tile_row("ideal", 256, 256, 0.5),
                     _tile_row(AIHWKIT_CASE, 512, 1, 0.2), _tile_row(AIHWKIT_CASE, 512, 256, 0.3, mvm_per_s=12800.0)]}
    table = bench_all.tile_table(tile).splitlines()
    assert table[0] == "| case | batch 1 | batch 256 |"
    assert table[2] == "| ideal | 0.91 | 0.95 |" and table[3] == f"| {AIHWKIT_CASE} | 0.20 | 0.30 |"  # 512 tiles only
    chip = {"rows": [{"model": "lenet5", "batch": 64, "chip_items_per_s": 2000.0}]}
    theirs = {"compiled_tiles": False, "tile_512_b256_s": 0.05, "models": {"lenet5": 500.0}}
    lines = bench_all.aihwkit_table(tile, chip, theirs).splitlines()
    assert "pure-torch tiles" in lines[0]
    assert lines[2] == "| 512 x 512 tile, batch 256 | 20.00 ms (0.30x the GEMM) | 50.00 ms | 2.5x |"  # 256 / 12800 s
    assert lines[3] == "| lenet5, batch 64 | 2,000.0 img/s | 500.0 img/s | 4.0x |"
    assert bench_all.aihwkit_table(tile, chip, None).splitlines()[3].endswith("| - | - |")


def test_bench_all_puts_its_tables_between_the_readme_markers_only(tmp_path):
    bench_all = _bench_all()
    readme = tmp_path / "README.md"
    readme.write_text(f"# top\n\n{bench_all.BEGIN}\nold table\n{bench_all.END}\n\nafter\n")
    bench_all.put_into_readme(readme, "| new | table |")
    assert readme.read_text() == f"# top\n\n{bench_all.BEGIN}\n| new | table |\n{bench_all.END}\n\nafter\n"
    bench_all.put_into_readme(readme, "again")
    assert readme.read_text().count("again") == 1 and "new" not in readme.read_text()
    readme.write_text(f"{bench_all.END}\n{bench_all.BEGIN}\n")
    with pytest.raises(SystemExit, match="needs one"):
        bench_all.put_into_readme(readme, "x")
    assert readme.read_text() == f"{bench_all.END}\n{bench_all.BEGIN}\n"  # left as it was


def test_the_readme_has_the_bench_all_markers():
    head, tail = _bench_all().readme_parts(Path(__file__).resolve().parents[1] / "README.md")
    assert "## Benchmarks" in head and "bench_all.py" in head


def test_bench_all_header_names_the_conditions_and_flags_a_loaded_machine():
    bench_all = _bench_all()
    info = {"date_utc": "2026-12-07T12:00:00+00:00", "cpu": "Xeon", "cpus": 16, "cpus_usable": 2, "python": "3.11.7"}
    versions = {"torch": "2.13.0+cpu", "numba": "0.61.0"}
    quiet = [{"step": "bench tile", "load_before": 0.2, "load_after": 1.9}]
    text = bench_all.header(info, quiet, versions)
    assert text.startswith("Measured 2026-12-07 on Xeon (2 of 16 CPUs usable)") and "torch 2.13.0+cpu" in text
    assert "bench tile 0.2-1.9" in text and "loaded" not in text
    assert "not to be trusted" in bench_all.header(info, [*quiet, {"step": "aihwkit", "load_before": 1.0, "load_after": 2.5}], versions)
