"""The torch tile backend on the CPU against the Numba kernels: the same conductances bit for bit (the device laws,
written once, in torch operations here: tests/test_torch_laws.py), the same draws, and reads equal to float32 rounding (where an ADC follows, a rounding
difference may move an output by one ADC step: allowed on a few outputs), for every read-noise kind, every device
model, unit cells of several devices, program-and-verify, the converters, bound management and wires."""

import numpy as np
import pytest
import torch

from xbarsim.config import ChipConfig
from xbarsim.crossbar.backend import NUMBA
from xbarsim.crossbar.laws import cells, rng
from xbarsim.crossbar.tile import TileArray
from xbarsim.crossbar.truth import reference
from xbarsim.crossbar_torch import readout, support
from xbarsim.crossbar_torch.backend import select, torch_backend
from xbarsim.errors import XbarsimError

TORCH = torch_backend(torch.device("cpu"))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """torch's elementwise operations at one thread: on the shared 2-core machine each two-thread operation
    waited ~20 ms for its second thread (measured: 0.16 ms a multiply at one thread). No result depends on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
BASE = ChipConfig.preset("ideal").with_values({"tile.rows": 64, "tile.cols": 40})
CONVERTERS = {"tile.dac": {"bits": 8, "range": "dynamic"}, "tile.adc": {"bits": 8, "range": "fixed", "bound": 2.0}}


def weights_and_inputs(seed: int = 0, n_out: int = 70, n_in: int = 150, batch: int = 96):
    r = np.random.default_rng(seed)
    return r.standard_normal((n_out, n_in)).astype(np.float32), (2 * r.standard_normal((batch, n_in))).astype(np.float32)


def both(w, cfg, seed=3) -> tuple[TileArray, TileArray]:
    return TileArray.from_weights(w, cfg, seed), TileArray.from_weights(w, cfg, seed, TORCH)


def assert_reads_agree(numba_out: np.ndarray, torch_out: np.ndarray, cfg: ChipConfig, scale: float, blocks: int = 3) -> None:
    """Equal to float32 rounding; with an ADC, outputs off by ADC steps on at most 1% of outputs (at most one
    step per row block; a step in output units is at most the ADC step x ``scale``, the largest DAC scale x
    weight scale x drift-compensation gain)."""
    assert torch_out.dtype == np.float32 and torch_out.shape == numba_out.shape
    diff = np.abs(numba_out.astype(np.float64) - torch_out)
    rounding = 1e-5 * max(1.0, float(np.abs(numba_out).max()))
    if cfg.tile.adc.levels == 0:
        assert diff.max() <= rounding
        return
    step = float(cfg.tile.adc.bound) / cfg.tile.adc.levels * scale
    assert (diff > rounding).mean() <= 0.01 and diff.max() <= blocks * step + rounding


def output_scale(w: np.ndarray, x: np.ndarray, gain: float = 1.0) -> float:
    return float(np.abs(w).max() * np.abs(x).max()) * gain


READ_NOISE = {
    "none": {"kind": "none"},
    "additive": {"kind": "additive", "sigma": 0.5},
    "proportional": {"kind": "proportional", "sigma": 0.05},
    "pcm": {"kind": "pcm"},
    "pcm per epoch": {"kind": "pcm", "time": "per_epoch"},
    "additive per epoch": {"kind": "additive", "sigma": 0.4, "time": "per_epoch"},
    "combined": {"kind": "combined", "parts": [{"kind": "pcm", "time": "per_epoch"}, {"kind": "additive", "sigma": 0.3}]},
}


@pytest.mark.parametrize("path", ["output_referred", "per_device"])
@pytest.mark.parametrize("noise", READ_NOISE)
def test_every_read_noise_kind_reads_as_on_numba(noise, path):
    w, x = weights_and_inputs()
    cfg = BASE.with_values({**CONVERTERS, "device.read_noise": READ_NOISE[noise], "tile.out_noise": 0.04, "tile.read_noise_path": path})
    cpu, gpu = both(w, cfg)
    assert_reads_agree(cpu.mvm(x), gpu.mvm(x), cfg, output_scale(w, x))
    aged = cfg.with_values({"device.drift": {"kind": "pcm"}, "drift_compensation": "global"})
    cpu, gpu = both(w, aged)
    cpu.drift(3600.0), gpu.drift(3600.0)  # a new epoch at a new time, and the probe read again
    assert np.allclose(gpu.gain, cpu.gain, rtol=1e-4)
    assert_reads_agree(cpu.mvm(x), gpu.mvm(x), aged, output_scale(w, x, float(cpu.gain)))
    assert cpu.reads == gpu.reads == len(x)


CONVERTER_CASES = {
    "ideal": {},
    "8-bit dynamic DAC, 8-bit ADC": CONVERTERS,
    "6-bit fixed DAC, 7-bit ADC": {"tile.dac": {"bits": 6, "range": "fixed", "bound": 4.0},
                                   "tile.adc": {"bits": 7, "range": "fixed", "bound": 3.0}},  # fmt: skip
    "unquantized clipping": {"tile.dac": {"range": "dynamic"}, "tile.adc": {"range": "fixed", "bound": 3.0}},
    "calibrated": {"tile.dac": {"bits": 8, "range": "calibrated", "bound": 1.0}, "tile.adc": {"bits": 8, "range": "calibrated", "bound": 1.0}},
    "weight_scale none": {**CONVERTERS, "mapping.weight_scale": "none"},
    "weight_scale layer": {**CONVERTERS, "mapping.weight_scale": "layer"},
}


@pytest.mark.parametrize("case", CONVERTER_CASES)
def test_converters_read_as_on_numba(case):
    w, x = weights_and_inputs(1)
    cfg = BASE.with_values({**CONVERTER_CASES[case], "device.read_noise": {"kind": "additive", "sigma": 0.3}, "tile.out_noise": 0.03})
    cpu, gpu = both(w, cfg)
    if case == "calibrated":
        for tiles in (cpu, gpu):
            tiles.set_ranges(dac=np.array([3.0, 2.5, 5.0], np.float32), adc=np.full((3, 2), 1.5, np.float32))
    assert_reads_agree(cpu.mvm(x), gpu.mvm(x), cfg, output_scale(w, x))
    assert_reads_agree(cpu.mvm(x[:1]), gpu.mvm(x[:1]), cfg, output_scale(w, x))  # batch 1, the next counters


@pytest.mark.parametrize("path", ["output_referred", "per_device"])
def test_bound_management_rereads_as_on_numba(path):
    w, x = weights_and_inputs(2)
    cfg = BASE.with_values({**CONVERTERS, "tile.bound_management": "iterative", "tile.read_noise_path": path,
                            "device.read_noise": {"kind": "pcm"}, "tile.out_noise": 0.04})  # fmt: skip
    cpu, gpu = both(w, cfg)
    out_cpu, out_gpu = cpu.mvm(4 * x), gpu.mvm(4 * x)
    assert cpu.bm_rereads > len(x)  # many tiles saturate and are read again, some several times
    assert abs(gpu.bm_rereads - cpu.bm_rereads) <= 0.01 * cpu.bm_rereads
    assert_reads_agree(out_cpu, out_gpu, cfg, output_scale(w, 4 * x))


def test_wire_resistance_reads_as_on_numba():
    w, x = weights_and_inputs(3)
    cfg = BASE.with_values({**CONVERTERS, "tile.wire_resistance_ohm": 0.5, "device.read_noise": {"kind": "additive", "sigma": 0.3}})
    cpu, gpu = both(w, cfg)
    assert np.array_equal(gpu.gdiff_t.numpy(), cpu.gdiff_t)
    assert_reads_agree(cpu.mvm(x), gpu.mvm(x), cfg, output_scale(w, x))


def test_a_chip_without_converters_reads_as_on_numba():
    w, x = weights_and_inputs(5)
    cpu, gpu = both(w, BASE)
    assert gpu.g_direct is not None
    assert np.allclose(gpu.mvm(x), cpu.mvm(x), rtol=1e-5, atol=1e-5)
    assert np.allclose(gpu.mvm(x), x @ w.T, rtol=1e-4, atol=1e-4)


DEVICE_MODELS = {  # every kind of device model and programming, each a day after programming, 8-bit converters
    **{f"preset {name}": {} for name in ("pcm", "aihwkit", "hermes", "neurram", "reram-cmo", "rram", "gaussian")},
    "power-law drift, faults": {"device.drift": {"kind": "power_law", "nu_mean": 0.05, "nu_std": 0.02},
                                "device.faults": {"p_on": 0.02, "p_off": 0.03}},  # fmt: skip
    "log-normal drift": {"device.drift": {"kind": "lognormal", "sigma": 0.1, "sigma_per_decade": 0.05}},
    "two devices per polarity": {"mapping.devices_per_polarity": 2},
    "program and verify": {"programming": {"method": "verify", "window_us": 0.5, "pulse": {"step_us": 0.4}}},
}


@pytest.mark.parametrize("model", DEVICE_MODELS)
def test_every_device_model_gives_the_numba_chip_and_reads_as_on_numba(model):
    """The conductances, read variances and file state are the Numba chip's bit for bit (the same laws, in torch
    operations on the torch backend), but for the drift compensation's reference and gain: they are read through the
    backend (the probe), and reads agree to an ADC step on a few outputs (a step on one probe output moves hermes's
    gain at 1 d by 6e-6); the reads agree."""
    w, x = weights_and_inputs(7)
    preset = model.split()[1] if model.startswith("preset") else "pcm"
    cfg = ChipConfig.preset(preset).with_values({**CONVERTERS, "tile.rows": 64, "tile.cols": 40, **DEVICE_MODELS[model]})
    cpu, gpu = both(w, cfg)
    cpu.drift(86400.0), gpu.drift(86400.0)
    assert np.array_equal(gpu.gdiff_t.numpy(), cpu.gdiff_t)
    for name in ("read_var_t", "g_direct"):
        a, b = getattr(cpu, name), getattr(gpu, name)
        assert (a is None and b is None) or np.array_equal(b.numpy(), a), name
    for key, value in cpu.state().items():
        if key in ("reference", "gain") and value is not None:
            assert np.allclose(np.asarray(gpu.state()[key]), np.asarray(value), rtol=1e-4, atol=0), key
        else:
            assert np.array_equal(np.asarray(gpu.state()[key]), np.asarray(value)), key
    gain = 1.0 if cpu.gain is None else float(np.max(cpu.gain))
    assert_reads_agree(cpu.mvm(x), gpu.mvm(x), cfg, output_scale(w, x, gain))


@pytest.mark.parametrize("noise", ["pcm per epoch", "additive per epoch", "combined"])
def test_per_epoch_read_noise_equals_numba(noise):
    w, _ = weights_and_inputs(8)
    cfg = BASE.with_values({"device.read_noise": READ_NOISE[noise], "device.write_noise": {"kind": "pcm"}})
    cpu, gpu = both(w, cfg)
    for tiles in (cpu, gpu):
        tiles.new_read_epoch()
    assert cpu.epoch == gpu.epoch == 1
    assert np.array_equal(gpu.gdiff_t.numpy(), cpu.gdiff_t)
    assert not np.allclose(cpu.gdiff_t, (cpu.g_now[0] - cpu.g_now[1]) / 25.0, atol=1e-3)  # the epoch's deviations are there


def test_the_noise_pass_draws_the_numba_normals_bit_for_bit():
    seed, n_out, batch, first = 9, 75, 13, 1_000_003
    keys = np.array([rng.stream_key(seed, rng.PURPOSE_READ, p) for p in range(3)], np.uint64)
    found = readout.output_normals(torch.from_numpy(keys.view(np.int64)), first, batch, n_out)
    half = (n_out + 1) // 2
    for p in range(3):
        counters = np.arange(first, first + batch, dtype=np.uint64)[:, None] * np.uint64(half) + np.arange(half, dtype=np.uint64)
        z0, z1 = reference.read_normal_pairs(keys[p], counters)
        expected = np.concatenate([z0, z1], axis=1)[:, :n_out]
        assert np.array_equal(found[p].numpy().view(np.uint32), expected.view(np.uint32))


def test_batch_splits_draw_the_same_noise():
    w, x = weights_and_inputs(10)
    cfg = BASE.with_values({"device.read_noise": {"kind": "additive", "sigma": 0.5}, "tile.out_noise": 0.05})
    whole, pieces = TileArray.from_weights(w, cfg, 4, TORCH), TileArray.from_weights(w, cfg, 4, TORCH)
    joined = np.concatenate([pieces.mvm(x[:40]), pieces.mvm(x[40:41]), pieces.mvm(x[41:])])
    assert np.allclose(whole.mvm(x), joined, rtol=1e-5, atol=1e-5) and whole.reads == pieces.reads == len(x)


def test_moving_an_array_keeps_its_chip(monkeypatch):
    w, x = weights_and_inputs(11)
    cfg = ChipConfig.preset("pcm").with_values({"tile.rows": 64, "tile.cols": 40})
    stay, move = TileArray.from_weights(w, cfg, 5), TileArray.from_weights(w, cfg, 5)
    stay.drift(3600.0), move.drift(3600.0)
    stay.mvm(x), move.mvm(x)
    programmings = []
    real_program = cells.program
    monkeypatch.setattr(cells, "program", lambda *args: programmings.append(1) or real_program(*args))
    move.to(TORCH)
    assert programmings == []  # the arrays are copied, the devices not programmed again
    assert move.backend is TORCH and isinstance(move.gdiff_t, torch.Tensor)
    for key, value in stay.state().items():
        assert np.array_equal(np.asarray(move.state()[key]), np.asarray(value)), key
    assert_reads_agree(stay.mvm(x), move.mvm(torch.from_numpy(x)).numpy(), cfg, output_scale(w, x))
    move.to(NUMBA)
    assert np.array_equal(stay.mvm(x), move.mvm(x))  # back on the CPU's kernels: the same chip, the same draws


def test_a_tensor_on_another_device_is_refused():
    w, _ = weights_and_inputs(12)
    tiles = TileArray.from_weights(w, BASE, 0, TORCH)
    with pytest.raises(ValueError, match="the tiles are on cpu, the input on meta"):
        tiles.mvm(torch.zeros(2, 150, device="meta"))


def test_backend_choice_and_devices():
    assert select(None, None, BASE) is NUMBA and select("auto", "cpu", BASE) is NUMBA
    assert select("torch", "cpu", BASE) is TORCH and select(None, "cpu", BASE.with_values({"runtime.backend": "torch"})) is TORCH
    with pytest.raises(XbarsimError, match="numba' runs on the CPU only"):
        select("numba", "meta", BASE)
    with pytest.raises(XbarsimError, match="backend 'gpu'"):
        select("gpu", None, BASE)
    with pytest.raises(XbarsimError, match="device 'tpu9'"):
        select("torch", "tpu9", BASE)
    if not torch.cuda.is_available():
        with pytest.raises(XbarsimError, match="no CUDA device"):
            select(None, "cuda", BASE)


def test_fields_the_torch_backend_does_not_compute_are_refused_by_name(monkeypatch):
    """A read option newer than the torch backend (say a tile field or a converter kind added for the CPU's
    kernels) is refused naming it; at its default value a new field changes nothing and passes. Device models
    are never refused: their laws run on every backend."""
    from xbarsim import config

    cfg = BASE.with_values({"tile.wire_resistance_ohm": 1.0, "device.write_noise": {"kind": "pcm"}})
    support.check(cfg)
    monkeypatch.setitem(support.SUPPORTED, config.TileConfig, support.SUPPORTED[config.TileConfig] - {"wire_resistance_ohm"})
    with pytest.raises(XbarsimError, match=r"tile.wire_resistance_ohm = 1.0 yet; run this chip on the CPU with backend 'numba'"):
        TileArray.from_weights(np.ones((2, 2), np.float32), cfg, 0, TORCH)
    support.check(BASE)  # the same field at its default
    monkeypatch.undo()
    monkeypatch.delitem(support.SUPPORTED, config.ConverterConfig)
    with pytest.raises(XbarsimError, match="tile.dac kind 'ConverterConfig'"):
        support.check(cfg)
    monkeypatch.undo()
    for name in ("pcm", "aihwkit", "hermes", "neurram", "reram-cmo", "aihwkit-hwa", "rram", "gaussian"):
        support.check(ChipConfig.preset(name).with_values({"mapping.devices_per_polarity": 2, "programming": {"method": "verify", "window_us": 0.5, "pulse": {"step_us": 0.4}}}))
