"""Whole chips on the torch backend (on the CPU, so that every machine runs it): mapped, moved, saved and loaded,
against the same chips on the Numba kernels."""

import h5py
import numpy as np
import pytest
import torch

from xbarsim.bench.workloads import MODELS, model_input
from xbarsim.config import ChipConfig
from xbarsim.crossbar.backend import NUMBA
from xbarsim.errors import XbarsimError
from xbarsim.mapping.chip import map_model
from xbarsim.mapping.chipload import load_chip
from xbarsim.models import zoo

SMALL = {"tile.rows": 64, "tile.cols": 64}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """As in test_torch_backend: on the shared 2-core machine two-thread torch operations wait for a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def lenet():
    torch.manual_seed(0)
    return zoo.build("lenet5", image_size=8).eval(), torch.rand(24, 1, 8, 8)


def file_contents(path) -> dict:
    """Every dataset's bytes and every attribute of a chip file, by name (the xbarsim version attribute aside)."""
    found = {}

    def visit(name, item):
        found.update({f"{name}@{key}": repr(value) for key, value in item.attrs.items()})
        if isinstance(item, h5py.Dataset):
            found[name] = (item.dtype.str, item.shape, item[()].tobytes())

    with h5py.File(path, "r") as f:
        found.update({f"@{key}": repr(value) for key, value in f.attrs.items() if key != "xbarsim_version"})
        f.visititems(visit)
    return found


@pytest.mark.parametrize("preset", ["ideal", "pcm", "aihwkit", "rram"])
def test_a_network_reads_as_on_numba(preset):
    net, x = lenet()
    cfg = ChipConfig.preset(preset).with_values(SMALL)
    cpu, gpu = map_model(net, cfg, seed=2), map_model(net, cfg, seed=2, backend="torch")
    assert cpu.chip.backend is NUMBA and gpu.chip.backend.name == "torch" and gpu.device == torch.device("cpu")
    with torch.no_grad():
        for _ in range(2):  # the second batch at the next read counters
            expected, found = cpu(x), gpu(x)
            assert torch.allclose(found, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    cpu.drift(86400.0), gpu.drift(86400.0)
    with torch.no_grad():
        assert torch.allclose(gpu(x), cpu(x), rtol=1e-4, atol=1e-5)
    assert [m.tiles.reads for m in gpu.chip.matrices()] == [m.tiles.reads for m in cpu.chip.matrices()]


def test_saving_from_the_torch_backend_writes_the_same_file(tmp_path):
    """Mapped on the torch backend, or moved there and back, or programmed there anew: byte-identical datasets
    and attributes (programming gives the same bits on every backend; runtime options are not stored)."""
    net, x = lenet()
    cfg = ChipConfig.preset("pcm").with_values({**SMALL, "drift_compensation": "none"})
    cpu = map_model(net, cfg, seed=3)
    gpu = map_model(net, cfg.with_values({"runtime.backend": "torch"}), seed=3)
    assert gpu.chip.backend.name == "torch"
    cpu.save(tmp_path / "cpu.h5"), gpu.save(tmp_path / "gpu.h5")
    assert file_contents(tmp_path / "cpu.h5") == file_contents(tmp_path / "gpu.h5")
    for chip in (cpu, gpu):  # reprogrammed (the torch backend's own programming), read, drifted
        chip.program(11)
        with torch.no_grad():
            chip(x)
        chip.drift(3600.0)
    cpu.save(tmp_path / "cpu2.h5"), gpu.save(tmp_path / "gpu2.h5")
    assert file_contents(tmp_path / "cpu2.h5") == file_contents(tmp_path / "gpu2.h5")
    gpu.to("cpu", backend="numba")
    gpu.save(tmp_path / "back.h5")
    assert file_contents(tmp_path / "back.h5") == file_contents(tmp_path / "cpu2.h5")


def test_drift_compensation_agrees_to_rounding_and_moves_exactly(tmp_path):
    net, _ = lenet()
    cfg = ChipConfig.preset("pcm").with_values(SMALL)
    cpu, gpu = map_model(net, cfg, seed=4), map_model(net, cfg, seed=4, backend="torch")
    cpu.program(5), gpu.program(5)  # the probe read on each backend
    cpu.drift(86400.0), gpu.drift(86400.0)
    for a, b in zip(cpu.chip.matrices(), gpu.chip.matrices()):
        assert np.allclose(b.tiles.reference, a.tiles.reference, rtol=1e-5) and np.allclose(b.tiles.gain, a.tiles.gain, rtol=1e-5)
    cpu.save(tmp_path / "before.h5")
    cpu.to("cpu", backend="torch")
    cpu.save(tmp_path / "moved.h5")
    assert file_contents(tmp_path / "moved.h5") == file_contents(tmp_path / "before.h5")


def test_loading_onto_the_torch_backend(lenet_files):
    _, x = lenet()
    x = x[:4]
    cpu = load_chip(lenet_files / "chip.h5")
    gpu = load_chip(lenet_files / "chip.h5", backend="torch")
    assert gpu.chip.backend.name == "torch" and isinstance(next(gpu.chip.matrices()).tiles.gdiff_t, torch.Tensor)
    with torch.no_grad():
        assert torch.allclose(gpu(x), cpu(x), rtol=1e-4, atol=1e-6)
    with pytest.raises(XbarsimError, match="numba' runs on the CPU only"):
        load_chip(lenet_files / "chip.h5", device="meta", backend="numba")


UNQUANTIZED = {"tile.dac": {"range": "none"}, "tile.adc": {"range": "none"}}


@pytest.mark.parametrize("name", ["resnet18", "vit", "chargpt"])
def test_zoo_networks_read_as_on_numba(name):
    """ResNet-18 (CIFAR-shaped) and, once the zoo has them, the transformers, against the Numba chip: the ideal
    chip, and the pcm chip's devices (programming, per-epoch and per-read noise, drift a day later) without
    quantizers, to float32 rounding (1e-4 of the largest logit, where the chip's noise moves them ~10%); the pcm
    preset with its 8-bit converters close (a rounding difference can move an ADC output by a step)."""
    if name not in MODELS or name not in zoo.ZOO:
        pytest.skip(f"{name} is not in the zoo and the benchmark workloads yet")
    zoo_name, kwargs = MODELS[name]
    torch.manual_seed(0)
    net = zoo.build(zoo_name, **kwargs).eval()
    x = model_input(name, 2)
    pcm = ChipConfig.preset("pcm")
    for cfg, tolerance in ((ChipConfig.preset("ideal"), 1e-4), (pcm.with_values(UNQUANTIZED), 1e-4), (pcm, 2e-2)):
        cpu = map_model(net, cfg, seed=1, progress=False)
        gpu = map_model(net, cfg, seed=1, progress=False, backend="torch")
        with torch.no_grad():
            for step in ("first read", "second read", "a day later"):
                if step == "a day later":
                    cpu.drift(86400.0), gpu.drift(86400.0)
                expected, found = cpu(x), gpu(x)
                if cfg.name == "pcm":
                    assert (expected - net(x)).abs().max() > 0.05 * expected.abs().max()  # the noise is there
                bound = tolerance * float(expected.abs().max())
                assert torch.allclose(found, expected, rtol=tolerance, atol=bound), (cfg.name, cfg.tile.adc.range, step)


def test_gradients_flow_through_torch_tiles():
    net, x = lenet()
    chip = map_model(net, ChipConfig.preset("pcm").with_values(SMALL), seed=0, backend="torch")
    x = x[:4].clone().requires_grad_(True)
    chip(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and x.grad.device == chip.device


def test_a_recurrent_network_reads_as_on_numba():
    torch.manual_seed(0)
    net = zoo.build("lstm", input_size=8).eval()
    x = torch.rand(3, 6, 8)
    cfg = ChipConfig.preset("pcm").with_values(SMALL)
    cpu, gpu = map_model(net, cfg, seed=1), map_model(net, cfg, seed=1, backend="torch")
    with torch.no_grad():
        assert torch.allclose(gpu(x), cpu(x), rtol=1e-4, atol=1e-5)


def test_moving_refuses_what_cannot_run():
    net, x = lenet()
    chip = map_model(net, ChipConfig.preset("pcm").with_values(SMALL), seed=0)
    with pytest.raises(XbarsimError, match="float32"):
        chip.to(torch.float16)
    with pytest.raises(XbarsimError, match="numba' runs on the CPU only"):
        chip.to("meta", backend="numba")
    chip.to("cpu", backend="torch")
    with pytest.raises(ValueError, match="its tiles are on cpu, got a tensor on meta"):
        chip(torch.zeros(2, 1, 8, 8, device="meta"))
    assert chip.cpu().chip.backend is NUMBA  # back on the default backend of the CPU


def test_mapping_and_loading_onto_torch_program_every_matrix_once_on_its_device(tmp_path, monkeypatch):
    """``map_model(backend="torch")`` and ``load_chip(backend="torch")`` program each matrix once, with the torch
    backend's laws (not on the CPU's and again on the device), and a drift after that programs nothing."""
    from xbarsim.crossbar.laws import cells

    net, _ = lenet()
    cfg = ChipConfig.preset("pcm").with_values(SMALL)
    map_model(net, cfg, seed=2).save(tmp_path / "chip.h5")
    ops = []
    real_program = cells.program
    monkeypatch.setattr(cells, "program", lambda *args: ops.append(args[-1].name) or real_program(*args))
    for make in (lambda: map_model(net, cfg, seed=2, backend="torch"), lambda: load_chip(tmp_path / "chip.h5", backend="torch")):
        ops.clear()
        chip = make()
        matrices = len(list(chip.chip.matrices()))
        assert ops == ["torch"] * matrices
        chip.drift(3600.0)
        assert ops == ["torch"] * matrices
