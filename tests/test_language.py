"""Character-level language models: the text data and its fixed split, bits per character, the zoo's
vit / chargpt / charlstm on the ideal chip, hardware-aware training and weight noise on attention, noise
sites, a BPC midpoint, and transformer chips in a sweep."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from xbarsim import ChipConfig, load_chip, map_model
from xbarsim.models import data, text, zoo
from xbarsim.models.data import DataError
from xbarsim.models.hwa import HardwareAware
from xbarsim.models.noise import noise_sites
from xbarsim.models.perturb import WeightNoise
from xbarsim.models.training import bits_per_character, language_scores
from xbarsim.sweeps.metrics import NoiseCurve, sigmoid
from xbarsim.sweeps.report import format_report
from xbarsim.sweeps.runner import run_sweep
from xbarsim.sweeps.spec import SweepSpec
from xbarsim.sweeps.store import read_results

IDEAL = ChipConfig.preset("ideal")


@pytest.fixture(scope="module")
def pydoc():
    return data.load("pydoc")


def test_the_pydoc_split_follows_its_documented_rule(pydoc):
    ids = text.encode(text.pydoc_text())
    n = len(ids)
    first, second = int(0.9 * n), int(0.95 * n)
    assert pydoc.task == "language" and pydoc.metric == "bpc" and pydoc.num_classes == text.VOCAB_SIZE == 97
    for (x, y), part in (((pydoc.x_train, pydoc.y_train), ids[:first]), ((pydoc.x_val, pydoc.y_val), ids[first:second]),
                         ((pydoc.x_test, pydoc.y_test), ids[second:])):  # fmt: skip
        windows = (len(part) - 1) // text.WINDOW
        assert x.shape == y.shape == (windows, text.WINDOW) and x.dtype == torch.int64
        assert np.array_equal(x.flatten().numpy(), part[: windows * text.WINDOW])
        assert np.array_equal(y.flatten().numpy(), part[1 : windows * text.WINDOW + 1])
    assert 0 < (ids == 0).mean() < 0.002  # typographic quotes and dashes only


def test_the_vocabulary_is_fixed_and_round_trips_ascii():
    sample = "def f(x):\n\treturn x ~ 1  # é"
    ids = text.encode(sample)
    assert ids.min() >= 0 and ids.max() < text.VOCAB_SIZE
    assert text.encode(" ~\n").tolist() == [2, 96, 1]
    assert text.decode(ids) == "def f(x):\n\ufffdreturn x ~ 1  # \ufffd"


def test_a_users_text_file_loads_and_bad_ones_are_named(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    split = data.load(f"text:{path}")
    assert split.name == "story.txt" and split.x_test.shape[1] == text.WINDOW and len(split.x_test) >= 1
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(DataError, match="short.txt: 9 characters are too few"):
        data.load(f"text:{short}")
    binary = tmp_path / "latin1.txt"
    binary.write_bytes(b"caf\xe9 " * 3000)
    with pytest.raises(DataError, match="latin1.txt: not UTF-8 text"):
        data.load(f"text:{binary}")
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        data.load(f"text:{tmp_path / 'nothing.txt'}")


class Uniform(nn.Module):
    """Equal logits over the vocabulary: log2(97) bits per character, and the argmax is character 0."""

    def forward(self, idx):
        return torch.zeros(*idx.shape, text.VOCAB_SIZE)


class Perfect(nn.Module):
    """Knows the next character (it is told it through a lookup): a large margin, near 0 bits."""

    def __init__(self, y):
        super().__init__()
        self.y = y

    def forward(self, idx):
        logits = torch.full((*idx.shape, text.VOCAB_SIZE), -30.0)
        return logits.scatter(-1, self.y[: len(idx)].unsqueeze(-1), 30.0)


def test_bits_per_character_against_hand_values(pydoc):
    x, y = pydoc.x_test[:20], pydoc.y_test[:20]
    assert bits_per_character(Uniform(), x, y, batch_size=7) == pytest.approx(math.log2(97), rel=1e-6)
    scores = language_scores(Perfect(y), x, y, batch_size=20)
    assert scores["accuracy"] == 1.0 and scores["bpc"] < 1e-20
    assert language_scores(Uniform(), x, y)["accuracy"] == pytest.approx(float((y == 0).float().mean()))


def _close(got, want, tol=2e-5):
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= tol * want.abs().max().item()


@pytest.mark.parametrize("name, kwargs, make", [
    ("vit", {}, lambda: torch.rand(5, 1, 8, 8)),
    ("vit", {"in_channels": 3, "image_size": 32, "patch_size": 4, "depth": 1}, lambda: torch.rand(3, 3, 32, 32)),
    ("chargpt", {"dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64}, lambda: torch.randint(0, 97, (3, 128))),
    ("charlstm", {"hidden_size": 48, "num_layers": 2}, lambda: torch.randint(0, 97, (3, 30))),
    ("chargru", {"hidden_size": 48}, lambda: torch.randint(0, 97, (3, 30))),
], ids=["vit-digits", "vit-cifar", "chargpt", "charlstm", "chargru"])  # fmt: skip
def test_zoo_sequence_models_on_the_ideal_chip_are_torchs(name, kwargs, make):
    torch.manual_seed(0)
    model = zoo.build(name, **kwargs).eval()
    chip = map_model(model, IDEAL.with_values({"tile.rows": 40, "tile.cols": 40}))
    x = make()
    with torch.no_grad():
        _close(chip(x), model(x))
    if name in ("vit", "chargpt"):
        assert sum(".q_proj" in layer for layer in chip.chip.layers) == kwargs.get("depth", 2)


def test_a_chargpt_chip_round_trips_without_the_model(tmp_path):
    torch.manual_seed(1)
    model = zoo.build("chargpt", dim=32, depth=1, mlp_dim=64).eval()
    chip = map_model(model, ChipConfig.preset("pcm"), seed=5)
    chip.drift(365.25 * 86400)
    chip.save(tmp_path / "gpt.h5")
    loaded = load_chip(tmp_path / "gpt.h5")
    x = torch.randint(0, 97, (2, 128))
    with torch.no_grad():
        assert torch.equal(loaded(x), chip(x))


@pytest.mark.parametrize("name", ["chargpt", "charlstm"])
def test_hardware_aware_training_covers_attention_and_recurrent_gates(name):
    torch.manual_seed(2)
    model = zoo.build(name, **({"dim": 32, "depth": 1, "mlp_dim": 64} if name == "chargpt" else {"hidden_size": 32})).eval()
    x = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        want = model(x)
    with HardwareAware(model, IDEAL):  # an ideal chip: the same products
        with torch.no_grad():
            _close(model(x), want, 1e-4)
    with HardwareAware(model, ChipConfig.preset("pcm")):
        out = model(x)
        out.square().mean().backward()
    assert (out - want).abs().max() > 1e-3
    inner = model.blocks[0].attn.in_proj_weight if name == "chargpt" else model.rnn.weight_hh_l0
    assert inner.grad is not None and inner.grad.abs().sum() > 0


def test_weight_noise_reaches_each_attention_projection_with_its_own_range():
    torch.manual_seed(3)
    mha = nn.MultiheadAttention(8, 2)
    with torch.no_grad():
        mha.in_proj_weight[8:16] *= 10  # the key projection's range is ten times the others'
    clean = mha.in_proj_weight.detach().clone()
    with WeightNoise(mha, 0.1, per_forward=False) as noise:
        noisy = mha.in_proj_weight.detach()
        unit = next(transform.unit for _, name, transform in noise._targets if name == "in_proj_weight")
    for block in range(3):
        rows = slice(8 * block, 8 * (block + 1))
        span = float(clean[rows].max() - clean[rows].min())
        assert torch.allclose(noisy[rows] - clean[rows], 0.1 * span * unit[rows], atol=1e-6)


def test_noise_sites_of_attention_on_torch_and_on_a_chip():
    model = zoo.build("chargpt", dim=16, depth=1, mlp_dim=32)
    sites = noise_sites(model)
    assert "blocks.0.attn" in sites and "blocks.0.attn.out_proj" not in sites
    chip = map_model(model, IDEAL)
    chip_sites = noise_sites(chip.network)
    assert {f"blocks.0.attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "out_proj", "scores", "context")} <= set(chip_sites)


def test_the_bpc_midpoint_is_where_the_rising_curve_is_halfway():
    sigmas = np.logspace(-2, 1, 13)
    falling = sigmoid(np.log10(sigmas), 0.8, 0.2, 4.0, np.log10(0.3))
    rng = np.random.default_rng(0)
    bpc = NoiseCurve(sigmas, (7.0 - 5.0 * falling)[:, None] + 0.01 * rng.standard_normal((13, 4)), metric="bpc")
    fit = bpc.midpoint()
    assert fit.sigma_mid == pytest.approx(0.3, rel=0.05)
    assert fit.curve(np.array([1e-3]))[0] == pytest.approx(7.0 - 5.0 * 0.8, abs=0.05)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sweeps")


def test_a_vision_transformer_chip_runs_in_a_sweep(sweep_dir):
    spec = SweepSpec.model_validate({
        "name": "vit-drift", "model": {"zoo": "vit", "kwargs": {"dim": 16, "depth": 1, "mlp_dim": 32}, "train": {"epochs": 2}},
        "data": "digits", "test_samples": 40, "chip": "pcm", "axes": {"drift.t": [0, 86400]}, "repeats": 2,
        "metrics": ["accuracy", "cost"],
    })  # fmt: skip
    run_sweep(spec, sweep_dir / "vit.h5", "serial", progress=False)
    results = read_results(sweep_dir / "vit.h5")
    assert list(results.columns["status"]) == ["ok"] * 4
    assert np.all((results.columns["accuracy"] >= 0) & (results.columns["accuracy"] <= 1))
    assert np.all(results.columns["energy_per_inference"] > 0)


def test_a_language_model_sweeps_on_bits_per_character(sweep_dir):
    corpus = sweep_dir / "corpus.txt"
    corpus.write_text(text.pydoc_text()[:40_000])
    spec = SweepSpec.model_validate({
        "name": "gpt-bpc", "model": {"zoo": "chargpt", "kwargs": {"dim": 16, "depth": 1, "mlp_dim": 32}, "train": {"epochs": 1}},
        "data": f"text:{corpus}", "test_samples": 8, "chip": "pcm", "axes": {"activation_noise": [0.01, 0.1, 0.3, 1, 3]}, "repeats": 2,
        "metrics": ["accuracy", "bpc", "midpoint"],
    })  # fmt: skip
    run_sweep(spec, sweep_dir / "gpt.h5", "serial", progress=False)
    results = read_results(sweep_dir / "gpt.h5")
    bpc = results.columns["bpc"]
    assert np.all(np.isfinite(bpc)) and bpc[-1] > bpc[0] > 0
    report = format_report(results)
    assert "bits per char." in report and "on bits per character" in report
