"""The device laws on the torch backend (``crossbar_torch.lawops``) against NumPy's and the Numba kernels
(``crossbar.laws.lawops``) on the CPU: programming, faults, unit cells, program-and-verify, drift, per-epoch read
noise, the read-noise variances and the wires' attenuation bit for bit, for every preset and device model; noise
stream version 1 drawn bit for bit; and a torch chip's programmed devices kept on its device, drifted there without
a host round trip."""

import numpy as np
import pytest
import torch

from xbarsim.config import ChipConfig
from xbarsim.crossbar.laws import cells, rng
from xbarsim.crossbar.laws.lawops import NUMPY_OPS
from xbarsim.crossbar.tile import TileArray
from xbarsim.crossbar_torch import rng as trng
from xbarsim.crossbar_torch.backend import torch_backend
from xbarsim.crossbar_torch.lawops import TorchOps

CPU = torch.device("cpu")
TORCH = torch_backend(CPU)
OPS = TorchOps(CPU, host_kernels=False)  # every operation in torch, as on a GPU
BOTH = {"torch operations": OPS, "Numba kernels on the tensors": TorchOps(CPU)}  # the second: the CPU's default
SMALL = {"tile.rows": 64, "tile.cols": 40}
VERIFY = {"method": "verify", "window_us": 0.5, "pulse": {"step_us": 0.4}}
MODELS = {  # every preset, and the device models tests/test_torch_backend.py reads with
    **{f"preset {name}": {} for name in ("pcm", "aihwkit", "hermes", "neurram", "reram-cmo", "rram", "gaussian", "ideal")},
    "power-law drift, faults": {"device.drift": {"kind": "power_law", "nu_mean": 0.05, "nu_std": 0.02},
                                "device.faults": {"p_on": 0.02, "p_off": 0.03}},  # fmt: skip
    "log-normal drift": {"device.drift": {"kind": "lognormal", "sigma": 0.1, "sigma_per_decade": 0.05}},
    "two devices per polarity": {"mapping.devices_per_polarity": 2},
    "program and verify": {"programming": VERIFY},
    "verify, soft window, faults, two devices": {"programming": {**VERIFY, "window_max_us": 0.6, "floor": "reset"},
                                                 "device.faults": {"p_on": 0.02, "p_off": 0.03}, "mapping.devices_per_polarity": 2},  # fmt: skip
    "verify, every pulse and read option": {"programming": {
        "method": "verify", "start": "reset", "window_pct": 4.0, "window_us": 0.2, "max_pulses": 6, "max_iterations": 4, "confirm": False,
        "read_noise_us": 0.1, "read_noise_pct": 2.0,
        "pulse": {"step_us": 0.3, "step_pct": 30.0, "step_growth": 0.2, "step_spread": 0.5, "reset_ratio": 1.5, "saturation_us": 22.0}}},
    "hermes, two devices": {"mapping.devices_per_polarity": 2},
    "current and proportional read noise": {"device.read_noise": {"kind": "combined", "parts": [
        {"kind": "current", "sigma": 0.01}, {"kind": "proportional", "sigma": 0.02, "time": "per_epoch"}]}},
    "pcm drift from the programmed conductance": {"device.drift": {"kind": "pcm", "exponent_from": "programmed"}},
    "wire resistance": {"tile.wire_resistance_ohm": 0.5},
}


def config(model: str) -> ChipConfig:
    name = model.split()[1].rstrip(",") if model.startswith(("preset", "hermes")) else "pcm"
    name = "hermes" if model.startswith("hermes") else name
    return ChipConfig.preset(name).with_values({**SMALL, **MODELS[model]})


def targets(cfg: ChipConfig, seed: int = 7) -> np.ndarray:
    w = np.random.default_rng(seed).standard_normal((70, 150)).astype(np.float32)
    return TileArray.from_weights(w, cfg, 0).g_target


def assert_bits_equal(expected: np.ndarray, found: torch.Tensor, what: str) -> None:
    assert isinstance(found, torch.Tensor) and found.device == CPU, what
    found = found.numpy()
    assert found.dtype == expected.dtype and found.shape == expected.shape, what
    assert np.array_equal(found.view(np.uint8), np.ascontiguousarray(expected).view(np.uint8)), what


@pytest.mark.parametrize("ops", BOTH)
@pytest.mark.parametrize("model", MODELS)
def test_every_law_gives_the_numpy_bits(model, ops):
    OPS = BOTH[ops]
    cfg, seed = config(model), 11
    dev = cfg.device
    g_target = targets(cfg)
    on_numpy = cells.program(g_target, cfg, seed)
    on_torch = cells.program(OPS.asarray(g_target), cfg, seed, OPS)
    for name, expected in on_numpy.arrays().items():
        assert (expected is None) == (getattr(on_torch, name) is None), name
        if expected is not None:
            assert_bits_equal(expected, getattr(on_torch, name), name)
    for t_s in (0.0, 86400.0, 3.0e7):
        now = cells.drifted(on_numpy, g_target, dev, t_s, seed)
        now_torch = cells.drifted(on_torch, OPS.asarray(g_target), dev, t_s, seed, ops=OPS)
        for n, (a, b) in enumerate(zip(now, now_torch)):
            assert_bits_equal(a, b, f"device {n} at {t_s} s")
        for epoch in (0, 3):
            expected = cells.epoch_conductances(now, on_numpy, dev, t_s, seed, epoch)
            assert_bits_equal(expected, cells.epoch_conductances(now_torch, on_torch, dev, t_s, seed, epoch, OPS), f"epoch {epoch}")
        assert_bits_equal(cells.read_noise_std(now, on_numpy, dev, t_s), cells.read_noise_std(now_torch, on_torch, dev, t_s, OPS), "std")


@pytest.mark.parametrize("first", [0, 65_536, 2**40 + 3])
def test_stream_version_1_draws_the_cpu_bits(first):
    key = rng.stream_key(4, rng.PURPOSE_DRIFT, 1)
    assert_bits_equal(rng.normals(key, 30_000, first), OPS.normals(key, 30_000, first), "normals")
    assert_bits_equal(rng.uniforms(key, 3_000, first), OPS.uniforms(key, 3_000, first), "uniforms")
    assert_bits_equal(NUMPY_OPS.normals(key, 10, first), torch.stack(trng.normal_pairs(key, first, 10, CPU)), "pairs")


def test_the_wires_attenuate_as_on_numpy():
    g = torch.from_numpy((np.random.default_rng(1).random((64, 40)) * 25).astype(np.float32))
    assert_bits_equal(NUMPY_OPS.wire_sums(g.numpy()), OPS.wire_sums(g), "A + B")


def test_the_numpy_semantics_of_maximum_minimum_and_clip():
    a = torch.tensor([-1.0, 0.5, float("nan"), 3.0, -0.0], dtype=torch.float64)
    for found, expected in ((OPS.maximum(a, 0.0), np.maximum(a.numpy(), 0.0)), (OPS.minimum(a, 0.5), np.minimum(a.numpy(), 0.5)),
                            (OPS.clip(a, 0.0, 2.0), np.clip(a.numpy(), 0.0, 2.0))):  # fmt: skip
        assert np.array_equal(found.numpy(), expected, equal_nan=True)


class Transfers:
    """Records every array the torch backend copies between host and device, and its size."""

    def __init__(self, monkeypatch):
        self.sizes = []
        self.patch = monkeypatch.context()
        patch = self.patch.__enter__()
        for owner in (TORCH, TorchOps):
            for name in ("asarray", "to_numpy"):
                patch.setattr(owner, name, self._wrapped(getattr(owner, name), name == "to_numpy"))

    def stop(self) -> None:
        self.patch.__exit__(None, None, None)

    def _wrapped(self, real, to_host: bool):
        def call(*args):
            array = args[-1]
            if isinstance(array, torch.Tensor) == to_host:  # a tensor to the host, or a host array to the device
                self.sizes.append(int(np.prod(np.shape(array))))
            return real(*args)

        return call


@pytest.mark.parametrize("ops", BOTH)
@pytest.mark.parametrize("model", ["preset pcm", "preset hermes", "verify, soft window, faults, two devices", "wire resistance"])
def test_a_torch_chip_keeps_its_programmed_devices_on_its_device_and_drifts_there(model, ops, monkeypatch):
    """After programming and after every drift the programmed devices and the conductances reads take are tensors on
    the chip's device, and a drift or a new read epoch copies no conductance array between host and device (only
    numbers: the drift-compensation probe's inputs and outputs, a read-noise constant). The chip is the Numba
    chip, bit for bit, whether the laws run in torch operations (as on a GPU) or as the Numba kernels on the
    tensors' memory (the CPU's default)."""
    monkeypatch.setattr(TORCH, "ops", BOTH[ops])
    cfg = config(model).with_values({"drift_compensation": "none"})
    w = np.random.default_rng(3).standard_normal((70, 150)).astype(np.float32)
    numba, chip = TileArray.from_weights(w, cfg, 5), TileArray.from_weights(w, cfg, 5, TORCH)
    devices = 150 * 70
    for name, array in chip._state().arrays().items():
        assert array is None or (isinstance(array, torch.Tensor) and array.device == CPU), name
    transfers = Transfers(monkeypatch)
    for t_s in (60.0, 86400.0, 3.0e7):
        chip.drift(t_s), numba.drift(t_s)
        chip.new_read_epoch(), numba.new_read_epoch()
        assert isinstance(chip.gdiff_t, torch.Tensor) and np.array_equal(chip.gdiff_t.numpy(), numba.gdiff_t[:150])
        assert (chip.read_var_t is None) == (numba.read_var_t is None)
        assert chip.read_var_t is None or np.array_equal(chip.read_var_t.numpy(), numba.read_var_t)
    assert max(transfers.sizes, default=0) < devices // 10, transfers.sizes
    transfers.stop()
    assert all(isinstance(a, torch.Tensor) for a in chip._state().arrays().values() if a is not None)
    assert np.array_equal(chip.weights(), numba.weights())
    assert chip.programmed_crc32 == numba.programmed_crc32
    for name, array in numba.programmed().arrays().items():
        assert array is None or np.array_equal(chip.programmed().arrays()[name], array), name


def test_the_numba_backend_keeps_no_programmed_state_beyond_its_budget(monkeypatch):
    monkeypatch.setenv("XBARSIM_KEEP_MB", "0")
    w = np.random.default_rng(3).standard_normal((70, 150)).astype(np.float32)
    tiles = TileArray.from_weights(w, config("preset pcm"), 5)
    tiles.drift(100.0)
    assert tiles._programmed is None and tiles._law_target is None


@pytest.mark.parametrize("ops", BOTH)
def test_pieces_do_not_change_the_bits(ops, monkeypatch):
    """Arrays cut into many pieces (torch's in turn, the Numba kernels' on several threads) give the whole array's bits."""
    from xbarsim.crossbar.laws import pieces
    from xbarsim.crossbar_torch import lawops

    cfg, seed = config("verify, soft window, faults, two devices"), 5
    g_target = targets(cfg)
    whole = cells.program(g_target, cfg, seed)
    now = cells.drifted(whole, g_target, cfg.device, 1e5, seed)
    monkeypatch.setattr(lawops, "PIECE_PAIRS", 1000)
    monkeypatch.setattr(pieces, "PIECE_PAIRS", 1000)
    cut = cells.program(BOTH[ops].asarray(g_target), cfg, seed, BOTH[ops])
    for name, expected in whole.arrays().items():
        assert_bits_equal(expected, getattr(cut, name), name)
    for a, b in zip(now, cells.drifted(cut, BOTH[ops].asarray(g_target), cfg.device, 1e5, seed, ops=BOTH[ops])):
        assert_bits_equal(a, b, "drifted")
