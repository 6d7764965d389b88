"""The analog layers' fast paths compute what the plain ones do: recurrent layers against a
step-by-step loop over the tiles, a convolution in one call against one in runs of images,
inference without autograd against the autograd path, and any thread count of torch and BLAS
against any other (the same bits).

Calls over different splits of a batch draw the same noise for every vector, but BLAS may round
their products differently (docs/determinism.md), so those tests use a chip without ADC rounding
(where a last-bit difference cannot move an output by an ADC step) and strong output noise, and
compare to float32 precision: a vector reading another vector's noise would miss by far more.
"""

from contextlib import nullcontext

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from xbarsim import ChipConfig, map_model
from xbarsim.crossbar import threads
from xbarsim.crossbar.read import blas
from xbarsim.crossbar.tile import TileArray
from xbarsim.mapping import serial
from xbarsim.models import zoo


def _pcm(**values) -> ChipConfig:
    return ChipConfig.preset("pcm").with_values({"tile.rows": 48, "tile.cols": 64, **values})


def _unrounded(**values) -> ChipConfig:
    """PCM devices, 8-bit DAC, no ADC rounding, output noise 0.2 (converter units)."""
    return _pcm(**{"tile.adc": {"bits": None, "range": "none"}, "tile.out_noise": 0.2, **values})


def _assert_same_reads(y, expected, fresh) -> None:
    """y equals expected to float32 precision, while ``fresh`` (the same inputs read again, with
    new noise) does not come close: y read the noise that expected read."""
    y, expected, fresh = (np.asarray(a) for a in (y, expected, fresh))
    scale = np.abs(expected).max()
    assert np.abs(y - expected).max() <= 1e-5 * scale
    assert np.abs(fresh - expected).max() > 1e-2 * scale


def _lstm_by_hand(chip, x: np.ndarray) -> np.ndarray:
    """A 1-layer LSTM chip's output, one tile call per matrix and time step, in time order: the
    input products' vector counters advance by one batch per step, as in one call of all steps."""
    ih, hh = chip.chip.matrices()
    steps, batch, _ = x.shape
    hidden = hh.in_features
    h = torch.zeros(batch, hidden)
    c = torch.zeros(batch, hidden)
    outputs = []
    for t in range(steps):
        gi = torch.from_numpy(ih.product(np.ascontiguousarray(x[t]), with_bias=True))
        gh = torch.from_numpy(hh.product(h.numpy(), with_bias=True))
        i, f, g, o = (gi + gh).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs).numpy()


@pytest.mark.parametrize("values", [{}, {"mapping.bias": "rows"}], ids=["digital bias", "bias in rows"])
def test_a_recurrent_layer_equals_its_steps_called_one_by_one(values):
    """The input products of all steps go in one call: step t's vectors still read what they
    would in a call of their own, one step after the other."""
    torch.manual_seed(0)
    lstm = nn.LSTM(40, 30).eval()
    x = torch.rand(6, 5, 40)
    chips = [map_model(lstm, _unrounded(**values), seed=2) for _ in range(2)]
    with torch.no_grad():
        out, _ = chips[0](x)
        out_again, _ = chips[0](x)
    expected = _lstm_by_hand(chips[1], x.numpy())
    _assert_same_reads(out, expected, out_again)
    _assert_same_reads(out_again, _lstm_by_hand(chips[1], x.numpy()), expected)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_steps_give_the_same_bits_with_the_default_threads(monkeypatch, kind):
    """The time steps run with one torch and one BLAS thread; the default threads give the same bits."""
    torch.manual_seed(1)
    model = zoo.build(kind, input_size=24, hidden_size=96, num_layers=2, bidirectional=True)
    x = torch.rand(9, 11, 24)
    serial_chip, default_chip = (map_model(model, _pcm(), seed=5) for _ in range(2))
    with torch.no_grad():
        expected = serial_chip(x)
        monkeypatch.setattr("xbarsim.mapping.layers.steps_section", nullcontext)
        assert torch.equal(default_chip(x), expected)


def test_the_serial_section_restores_the_thread_counts():
    torch_before = torch.get_num_threads()
    blas_before = [lib.num_threads for lib in serial._blas().lib_controllers]
    with serial.serial_section():
        assert torch.get_num_threads() == 1
        assert all(lib.num_threads == 1 for lib in serial._blas().lib_controllers)
    with pytest.raises(RuntimeError), serial.serial_section():
        raise RuntimeError("a failing step")
    assert torch.get_num_threads() == torch_before
    assert [lib.num_threads for lib in serial._blas().lib_controllers] == blas_before


@pytest.mark.parametrize("name,shape", [("lenet5", (3, 1, 32, 32)), ("mlp", (5, 1, 8, 8)), ("lstm", (2, 4, 1))])
def test_inference_without_autograd_equals_the_autograd_path(name, shape):
    """Under no_grad (or for inputs without gradients) the layers skip the autograd node: same bits."""
    torch.manual_seed(2)
    model = zoo.build(name, input_size=1) if name == "lstm" else zoo.build(name)
    x = torch.rand(*shape)
    plain, tracked = (map_model(model, ChipConfig.preset("pcm"), seed=7) for _ in range(2))
    with torch.no_grad():
        y_plain = plain(x)
    y_tracked = tracked(x.clone().requires_grad_(True))
    assert y_tracked.requires_grad
    assert torch.equal(y_plain, y_tracked.detach())


def test_blas_thread_counts_do_not_change_a_product():
    """OpenBLAS splits a product over rows and columns, never the summed index: one thread or all."""
    rng = np.random.default_rng(3)
    weights = rng.standard_normal((700, 600)).astype(np.float32)
    x = rng.standard_normal((300, 600)).astype(np.float32)
    arrays = [TileArray.from_weights(weights, ChipConfig.preset("pcm"), seed=4) for _ in range(2)]
    threaded = arrays[0].mvm(x)
    with threadpool_limits(1, user_api="blas"):
        single = arrays[1].mvm(x)
    assert np.array_equal(threaded, single)


@pytest.mark.parametrize("groups", [1, 2])
def test_a_convolution_split_into_runs_of_images_reads_as_one_call(monkeypatch, groups):
    """A batch too large for one tile call runs in pieces (``PATCH_VALUES``): the pieces, and
    the groups within them, land where one call would have put them."""
    torch.manual_seed(3)
    conv = nn.Conv2d(4, 6, 3, stride=(2, 1), padding=1, groups=groups).eval()
    x = torch.rand(5, 4, 9, 8)
    whole, split = (map_model(conv, _unrounded(), seed=8) for _ in range(2))
    with torch.no_grad():
        expected, fresh = whole(x), whole(x)
        monkeypatch.setattr("xbarsim.mapping.layers.PATCH_VALUES", 2 * 5 * 8 * 9 * 4 // groups)  # 2 images a call
        _assert_same_reads(split(x), expected, fresh)
    assert expected.is_contiguous(memory_format=torch.channels_last)


def _threads_seen_by_a_forward(chip, x) -> tuple[int, list[int], bool]:
    """(torch's threads, BLAS's threads, whether a call of PARALLEL_MIN_OUTPUTS runs serially) inside the
    network's forward, seen from its first layer."""
    seen = []
    first = next(iter(chip.chip.layers.values()))
    hook = first.register_forward_pre_hook(
        lambda module, args: seen.append((torch.get_num_threads(), [lib.num_threads for lib in serial._blas().lib_controllers],
                                          not threads.use_parallel(threads.PARALLEL_MIN_OUTPUTS)))  # fmt: skip
    )
    try:
        with torch.no_grad():
            chip(x)
    finally:
        hook.remove()
    return seen[0]


@pytest.mark.parametrize("load,held", [(0.5, False), (2.9, False), (3.1, True)])
def test_a_network_forward_holds_one_thread_only_on_a_busy_machine(monkeypatch, load, held):
    """"auto": one torch and BLAS thread for the forward when the 1-minute load average exceeds
    the CPU count (2 here) + 1; else NumPy's BLAS is held at one (its products cut over xbarsim's pool:
    read/blasthreads.py) and torch too where its GEMMs ignore threads (MKL's strict mode), while the other
    BLAS libraries keep theirs. The thread counts come back after it."""
    monkeypatch.setattr(serial.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(serial.os, "getloadavg", lambda: (load, 0.0, 0.0))
    monkeypatch.setattr(serial, "NETWORK_THREADS", "auto")
    chip = map_model(zoo.build("lenet5"), ChipConfig.preset("pcm"), seed=1)
    torch_before = torch.get_num_threads()
    torch.set_num_threads(2)  # two threads outside, whatever this machine has
    try:
        with threadpool_limits(2, user_api="blas"):
            outside = (2, [lib.num_threads for lib in serial._blas().lib_controllers])
            inside = _threads_seen_by_a_forward(chip, torch.rand(2, 1, 32, 32))
            after = (torch.get_num_threads(), [lib.num_threads for lib in serial._blas().lib_controllers])
    finally:
        torch.set_num_threads(torch_before)
    numpys = [lib.filepath == blas.numpy_blas_path() for lib in serial._blas().lib_controllers]
    quiet_torch = 1 if serial.torch_gemms_ignore_threads() else 2
    assert inside[:2] == ((1, [1] * len(outside[1])) if held else (quiet_torch, [1 if ours else 2 for ours in numpys]))
    assert inside[2] == (not held)  # quiet: only large Numba passes threaded (threads.network_kernels)
    assert after == outside


@pytest.mark.parametrize("name,shape", [("resnet18", (3, 3, 32, 32)), ("lstm", (4, 7, 1))])
def test_a_network_gives_the_same_bits_on_one_thread_and_on_all(monkeypatch, name, shape):
    torch.manual_seed(4)
    model = zoo.build(name, input_size=1) if name == "lstm" else zoo.build(name)
    x = torch.rand(*shape)
    outputs = {}
    for policy in ("one", "all"):
        monkeypatch.setattr(serial, "NETWORK_THREADS", policy)
        chip = map_model(model, ChipConfig.preset("pcm"), seed=6)
        with torch.no_grad():
            outputs[policy] = chip(x)
    assert torch.equal(outputs["one"], outputs["all"])
    monkeypatch.setattr(serial, "NETWORK_THREADS", "some")
    with pytest.raises(ValueError, match="NETWORK_THREADS must be"), torch.no_grad():
        chip(x)
