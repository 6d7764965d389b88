"""The benchmarks: fresh processes in the stated import order, torch alone, cold/warm, JSON."""

import json

import pytest

from xbarsim.bench import model, worker
from xbarsim.bench.process import run_job
from xbarsim.cli import main


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
