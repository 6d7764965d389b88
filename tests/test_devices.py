"""Devices on the command line and in sweeps: --device and --backend reach the chip, the training and the workers;
a device the machine lacks is refused in one line. (CUDA itself is not here: these run the same code on the CPU.)"""

import re

import pytest
import torch

from xbarsim.cli import main
from xbarsim.errors import XbarsimError
from xbarsim.models.checkpoint import load_network
from xbarsim.sweeps import runner
from xbarsim.sweeps.spec import SweepSpec
from xbarsim.sweeps.store import read_results


def test_training_on_a_device_with_noise_injection_and_hwa(tmp_path, capsys):
    out = tmp_path / "hwa.pt"
    argv = ["train", "--model", "lenet5", "--epochs", "1", "--noisy", "0.05", "--hwa", "pcm", "--device", "cpu", "-o", str(out)]
    assert main(argv) == 0
    assert "trained lenet5 on digits (cpu)" in capsys.readouterr().out
    assert all(t.device.type == "cpu" for t in torch.load(out, weights_only=True)["state_dict"].values())
    assert load_network(out) is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("command", [["train", "--model", "mlp", "-o", "x.pt"], ["eval", "CHIP"], ["sweep", "SPEC", "-o", "s.h5"],
                                     ["robustness", "CHECKPOINT"], ["calibrate", "CHIP", "-o", "c.h5"], ["bench", "model", "--models", "lenet5"]])  # fmt: skip
def test_a_device_this_machine_lacks_is_one_line(command, lenet_files, tmp_path, capsys):
    names = {"CHIP": str(lenet_files / "chip.h5"), "SPEC": str(lenet_files / "spec.yaml"), "CHECKPOINT": str(lenet_files / "lenet5.pt")}
    argv = [names.get(a, str(tmp_path / a) if a.endswith((".pt", ".h5")) else a) for a in command]
    assert main([*argv, "--device", "cuda"]) == 2
    assert re.search(r"error: device 'cuda': this torch .* has no CUDA device here", capsys.readouterr().err)


def test_eval_on_the_torch_backend_reads_the_same_chip(lenet_files, capsys):
    assert main(["eval", str(lenet_files / "chip.h5")]) == 0
    assert main(["eval", str(lenet_files / "chip.h5"), "--backend", "torch", "--device", "cpu"]) == 0
    numba_line, torch_line = capsys.readouterr().out.strip().splitlines()
    assert numba_line.endswith("numba on cpu)") and torch_line.endswith("torch on cpu)")
    assert numba_line.split("(")[0] == torch_line.split("(")[0]  # the same accuracy


def test_a_sweep_on_the_torch_backend_stores_the_same_rows(lenet_files, tmp_path):
    spec = SweepSpec.from_file(lenet_files / "spec.yaml")
    numba = runner.run_sweep(spec, tmp_path / "numba.h5", "serial", progress=False)
    on_torch = runner.run_sweep(spec, tmp_path / "torch.h5", "serial", progress=False, device="cpu", backend="torch")
    a, b = read_results(numba.path).columns, read_results(on_torch.path).columns
    assert list(a["accuracy"]) == list(b["accuracy"]) and len(a["accuracy"]) == 1


def test_workers_get_gpus_in_turn(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert runner.worker_devices("cuda", 5) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert runner.worker_devices("cuda:1", 2) == ["cuda:1", "cuda:1"] and runner.worker_devices("cpu", 1) == ["cpu"]
    assert runner.default_workers("cuda") == 2 and runner.default_workers("cuda:1") == 1


def test_dask_workers_choose_their_own_device(lenet_files, tmp_path):
    spec = SweepSpec.from_file(lenet_files / "spec.yaml")
    with pytest.raises(XbarsimError, match="needs the serial or processes executor"):
        runner.run_sweep(spec, tmp_path / "s.h5", "dask:local", device="meta")
    assert not (tmp_path / "s.h5").exists()
