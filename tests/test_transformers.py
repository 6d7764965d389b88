"""Attention and transformer layers on tiles: the ideal chip reproduces torch (every MultiheadAttention
option, encoder and decoder layers, stacks, nn.Transformer), every projection really runs on the tiles,
linear-like layers map, the cost counts the digital products apart, and chip files round-trip bit for bit
without the model."""

import itertools
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from xbarsim import ChipConfig, load_chip, map_model, register_linear
from xbarsim.mapping.cost import measure_cost
from xbarsim.mapping.linear import MappingWarning, unregister_linear
from xbarsim.models import attention, netspec

IDEAL = ChipConfig.preset("ideal")
TILE_40 = IDEAL.with_values({"tile.rows": 40, "tile.cols": 24})  # projections split over several tiles
E, H, L, S, N = 48, 4, 5, 7, 3


def _close(got, want, tol: float = 2e-5) -> None:
    """Equal to float32 rounding: NaNs in the same places, elsewhere within tol of the largest value."""
    assert got.shape == want.shape
    assert torch.equal(got.isnan(), want.isnan())
    scale = max(want.nan_to_num().abs().max().item(), 1e-6)
    assert (got - want).nan_to_num().abs().max().item() <= tol * scale


def _seq(batch_first: bool, n: int, length: int, features: int) -> torch.Tensor:
    return torch.randn(n, length, features) if batch_first else torch.randn(length, n, features)


MHA_OPTIONS = list(itertools.product([False, True], [None, 20], [True, False], [False, True], [False, True]))


@pytest.mark.parametrize("batch_first, kdim, bias, bias_kv, zero_attn", MHA_OPTIONS,
                         ids=[f"bf{int(a)}-kdim{b}-bias{int(c)}-biaskv{int(d)}-zero{int(e)}" for a, b, c, d, e in MHA_OPTIONS])
def test_multihead_attention_on_the_ideal_chip_is_torchs(batch_first, kdim, bias, bias_kv, zero_attn):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, bias=bias, kdim=kdim, vdim=kdim and 12, batch_first=batch_first,
                                add_bias_kv=bias_kv, add_zero_attn=zero_attn).eval()  # fmt: skip
    chip = map_model(mha, TILE_40)
    assert list(chip.chip.layers) == ["q_proj", "k_proj", "v_proj", "out_proj"]
    q, k, v = _seq(batch_first, N, L, E), _seq(batch_first, N, S, mha.kdim), _seq(batch_first, N, S, mha.vdim)
    padding = torch.zeros(N, S, dtype=torch.bool)
    padding[1, -3:] = True
    all_keys = padding.clone()
    all_keys[2, :] = True  # every key of one sequence masked: without weights, torch gives zeros there (NaN with them)
    bool_mask = torch.rand(L, S) > 0.6
    cases = [{}, {"need_weights": False}, {"average_attn_weights": False}, {"key_padding_mask": padding},
             {"key_padding_mask": all_keys, "need_weights": False}, {"key_padding_mask": padding.float().masked_fill(padding, -1e9)},
             {"attn_mask": torch.randn(L, S)}, {"attn_mask": bool_mask, "need_weights": False},
             {"attn_mask": torch.randn(N * H, L, S), "key_padding_mask": padding.float().masked_fill(padding, float("-inf")),
              "average_attn_weights": False}]  # fmt: skip
    with torch.no_grad():
        for kwargs in cases:
            want, got = mha(q, k, v, **kwargs), chip(q, k, v, **kwargs)
            _close(got[0], want[0])
            assert (got[1] is None) == (want[1] is None)
            if want[1] is not None:
                _close(got[1], want[1])


@pytest.mark.parametrize("batch_first", [False, True])
def test_self_attention_causal_and_unbatched_inputs(batch_first):
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(E, H, batch_first=batch_first).eval()
    chip = map_model(mha, TILE_40)
    x = _seq(batch_first, N, L, E)
    causal = nn.Transformer.generate_square_subsequent_mask(L)
    with torch.no_grad():
        for kwargs in ({"attn_mask": causal, "is_causal": True, "need_weights": False}, {"attn_mask": causal, "is_causal": True}):
            _close(chip(x, x, x, **kwargs)[0], mha(x, x, x, **kwargs)[0])
        one = x[0] if batch_first else x[:, 0]
        for got, want in zip(chip(one, one, one), mha(one, one, one)):
            _close(got, want)
    with pytest.raises(RuntimeError, match="is_causal"):
        chip(x, x, x, is_causal=True)


LAYERS = list(itertools.product(["relu", "gelu"], [False, True], [False, True]))


@pytest.mark.parametrize("activation, norm_first, batch_first", LAYERS,
                         ids=[f"{a}-normfirst{int(b)}-bf{int(c)}" for a, b, c in LAYERS])
def test_encoder_and_decoder_layers_on_the_ideal_chip(activation, norm_first, batch_first):
    torch.manual_seed(2)
    kwargs = {"dim_feedforward": 64, "activation": activation, "norm_first": norm_first, "batch_first": batch_first}
    encoder = nn.TransformerEncoderLayer(E, H, **kwargs).eval()
    decoder = nn.TransformerDecoderLayer(E, H, **kwargs).eval()
    src, tgt = _seq(batch_first, N, S, E), _seq(batch_first, N, L, E)
    padding = torch.zeros(N, S, dtype=torch.bool)
    padding[0, -2:] = True
    causal = nn.Transformer.generate_square_subsequent_mask(L)
    enc_chip, dec_chip = map_model(encoder, TILE_40), map_model(decoder, TILE_40)
    assert len(enc_chip.chip.layers) == 6 and len(dec_chip.chip.layers) == 10
    with torch.no_grad():  # inference: torch takes its fused fast path where it can
        _close(enc_chip(src, src_key_padding_mask=padding), encoder(src, src_key_padding_mask=padding))
        _close(dec_chip(tgt, src, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=padding),
               decoder(tgt, src, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=padding))
    _close(enc_chip(src), encoder(src))  # with gradients: torch's slow path


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "with-grad"])
def test_encoder_stack_with_padding_matches_torchs_nested_fast_path(grad):
    """In inference torch packs padded batches into nested tensors: its padded outputs are norm(0)."""
    torch.manual_seed(3)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, 64, batch_first=True), 2, norm=nn.LayerNorm(E)).eval()
    nn.init.normal_(encoder.norm.bias)
    chip = map_model(encoder, TILE_40)
    x = torch.randn(N, S, E)
    padding = torch.zeros(N, S, dtype=torch.bool)
    padding[1, -3:] = True
    with torch.set_grad_enabled(grad):
        want, got = encoder(x, src_key_padding_mask=padding), chip(x, src_key_padding_mask=padding)
    if not grad:
        assert torch.equal(want[1, -1], encoder.norm.bias.detach())  # torch's own convention, reproduced
    _close(got.detach(), want.detach())


def test_transformer_and_decoder_stack_on_the_ideal_chip():
    torch.manual_seed(4)
    model = nn.Transformer(E, H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64, batch_first=True).eval()
    chip = map_model(model, TILE_40)
    assert len(chip.chip.layers) == 2 * 6 + 2 * 10 + 0
    src, tgt = torch.randn(N, S, E), torch.randn(N, L, E)
    mask = model.generate_square_subsequent_mask(L)
    with torch.no_grad():
        _close(chip(src, tgt, tgt_mask=mask, tgt_is_causal=True), model(src, tgt, tgt_mask=mask, tgt_is_causal=True))


def _mini_gpt() -> nn.Module:
    layer = nn.TransformerEncoderLayer(E, H, 64, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
    return nn.Sequential(nn.Embedding(30, E), nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(E), enable_nested_tensor=False),
                         nn.Linear(E, 30)).eval()  # fmt: skip


def test_every_projection_runs_on_its_tiles():
    """No fused kernel bypasses the tiles: each projection's read counter advances by the tokens it saw, and
    device noise changes the output."""
    torch.manual_seed(5)
    model = _mini_gpt()
    tokens = torch.randint(0, 30, (N, L))
    ideal = map_model(model, IDEAL)
    noisy = map_model(model, ChipConfig.preset("pcm"))
    projections = [name for name in noisy.chip.layers if "self_attn" in name]
    assert len(projections) == 8 and all(name.rsplit(".", 1)[1] in ("q_proj", "k_proj", "v_proj", "out_proj") for name in projections)
    before = {name: layer.matrices()[0].tiles.reads for name, layer in noisy.chip.layers.items()}
    with torch.no_grad():
        clean, noisy_out, want = ideal(tokens), noisy(tokens), model(tokens)
    assert all(layer.matrices()[0].tiles.reads == before[name] + N * L for name, layer in noisy.chip.layers.items())
    _close(clean, want)
    assert (noisy_out - want).abs().max() > 1e-2 * want.abs().max()


def test_summary_and_cost_list_each_projection_and_count_the_digital_products():
    torch.manual_seed(6)
    model = _mini_gpt()
    chip = map_model(model, IDEAL)
    summary = chip.summary()
    for name in ("1.layers.0.self_attn.q_proj", "1.layers.1.self_attn.out_proj", "1.layers.1.linear2", "2"):
        assert f"\n{name} " in summary
    assert "score and context products of 2 attention module(s)" in summary
    tokens = torch.randint(0, 30, (4, L))
    cost = measure_cost(chip, tokens)
    assert cost.digital_macs == {f"1.layers.{k}.self_attn": 2 * L * L * E for k in range(2)}  # scores + context, per sequence
    analog = 2 * L * (4 * E * E + 2 * E * 64) + L * E * 30
    assert cost.analog_macs == pytest.approx(analog)
    assert cost.analog_share == pytest.approx(analog / (analog + 4 * L * L * E))
    assert all(layer.vectors == L for layer in cost.layers)


class HFConv1D(nn.Module):
    """Hugging Face GPT-2's Conv1D, by shape: weight (in, out), y = x W + b."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.1)
        self.bias = nn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight).reshape(*x.shape[:-1], self.nf)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc, self.c_proj = HFConv1D(64, E), HFConv1D(E, 64)

    def forward(self, x):
        return self.c_proj(torch.nn.functional.gelu(self.c_fc(x)))


@pytest.fixture
def conv1d_registered():
    register_linear(HFConv1D, weight_layout="in_out")
    yield
    unregister_linear(HFConv1D)


def test_a_conv1d_like_layer_maps_as_a_linear_after_one_call(conv1d_registered, tmp_path):
    torch.manual_seed(7)
    block = Block().eval()
    x = torch.randn(N, L, E)
    chip = map_model(block, TILE_40, seed=2)
    assert {name: layer.kind for name, layer in chip.chip.layers.items()} == {"c_fc": "linear", "c_proj": "linear"}
    assert chip.chip.layers["c_fc"].in_features == E and chip.chip.layers["c_fc"].out_features == 64
    with torch.no_grad():
        _close(chip(x), block(x))
    noisy = map_model(block, ChipConfig.preset("pcm"), seed=2)
    noisy.save(tmp_path / "block.h5")
    loaded = load_chip(tmp_path / "block.h5", model=Block())
    with torch.no_grad():
        assert torch.equal(loaded(x), noisy(x))


def test_without_the_call_a_conv1d_like_layer_stays_digital():
    chip = map_model(Block().eval(), IDEAL, layers=None)
    assert not chip.chip.layers


def test_linear_subclasses_map_as_linear_and_an_own_forward_is_named():
    class Plain(nn.Linear):
        pass

    class Scaled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chip = map_model(nn.Sequential(Plain(6, 4)), IDEAL)
    assert chip.chip.layers["0"].kind == "linear"
    with pytest.warns(MappingWarning, match="layer '0': Scaled overrides nn.Linear.forward"):
        map_model(nn.Sequential(Scaled(6, 4)), IDEAL)


ROUND_TRIPS = {
    "mini-gpt": (_mini_gpt, lambda: (torch.randint(0, 30, (N, L)),)),
    "attention-kdim-bias-kv-zero": (lambda: nn.MultiheadAttention(E, H, kdim=20, vdim=12, add_bias_kv=True, add_zero_attn=True),
                                    lambda: (torch.randn(L, N, E), torch.randn(S, N, 20), torch.randn(S, N, 12))),
    "transformer": (lambda: nn.Transformer(E, H, 1, 1, 64, batch_first=True, norm_first=True),
                    lambda: (torch.randn(N, S, E), torch.randn(N, L, E))),
    "decoder-stack": (lambda: nn.TransformerDecoder(nn.TransformerDecoderLayer(E, H, 64), 2, norm=nn.LayerNorm(E)),
                      lambda: (torch.randn(L, N, E), torch.randn(S, N, E))),
}


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_transformer_chip_files_round_trip_bit_identically_without_the_model(name, tmp_path):
    torch.manual_seed(8)
    build, inputs = ROUND_TRIPS[name]
    model = build().eval()
    assert netspec.describe(model) is not None
    chip = map_model(model, ChipConfig.preset("pcm"), seed=4)
    chip.drift(86400.0)
    chip.save(tmp_path / "chip.h5")
    loaded = load_chip(tmp_path / "chip.h5")
    assert list(loaded.chip.layers) == list(chip.chip.layers)
    args = inputs()
    with torch.no_grad():
        for _ in range(2):  # and they read on alike
            got, want = loaded(*args), chip(*args)
            for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
                assert torch.equal(g, w)


def test_a_changed_transformer_layer_is_not_described_as_data():
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, 64), 2, enable_nested_tensor=False)
    assert netspec.describe(encoder) is not None
    encoder.layers[1].dropout.p = 0.3  # no longer what the description rebuilds
    assert netspec.describe(encoder) is None
    layer = nn.TransformerEncoderLayer(E, H, 64, activation=nn.GELU())  # an activation module, not a name
    assert netspec.describe(layer) is None


def test_mapping_only_some_attention_leaves_the_rest_digital():
    torch.manual_seed(9)
    model = nn.Transformer(E, H, 1, 1, 64, batch_first=True).eval()
    chip = map_model(model, IDEAL, layers=["encoder.layers.0.self_attn", "decoder.layers.0.linear1"])
    assert list(chip.chip.layers) == [f"encoder.layers.0.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "out_proj")] + [
        "decoder.layers.0.linear1"]  # fmt: skip
    assert isinstance(chip.network.decoder.layers[0].self_attn, nn.MultiheadAttention)
    src, tgt = torch.randn(N, S, E), torch.randn(N, L, E)
    with torch.no_grad():
        _close(chip(src, tgt), model(src, tgt))


def test_the_chip_owns_its_digital_tensors_though_mapping_shares_the_weights_it_reads():
    emb = nn.Embedding(10, 8)
    head = nn.Linear(8, 10, bias=False)
    head.weight = emb.weight  # tied: the embedding stays digital
    tied = map_model(nn.Sequential(emb, head), IDEAL)
    assert tied.network[0].weight is not emb.weight
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    chip = map_model(model, IDEAL, layers=["0"])
    assert chip.network[2].weight is not model[2].weight
    x = torch.randn(2, 4)
    with torch.no_grad():
        before = chip(x)
        model[0].bias.add_(1.0)  # the user goes on training the original
        model[2].weight.mul_(2.0)
        assert torch.equal(chip(x), before)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_runs_torchs_fused_kernel_unless_a_hook_watches_its_products(monkeypatch, causal):
    """No weights asked for and nothing hooked on ``scores`` or ``context``: the scores and the context come
    from ``scaled_dot_product_attention``, as in torch; a hook on a site sends the call down the explicit
    path, where the hook sees the scores. Both equal torch's own layer to float32 rounding."""
    torch.manual_seed(5)
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    split = attention.SplitAttention.of(mha)
    x = torch.randn(3, 5, 16)
    mask = torch.full((5, 5), float("-inf")).triu(1) if causal else None
    fused_calls, real = [], torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", lambda *a, **k: fused_calls.append(1) or real(*a, **k))
    with torch.no_grad():
        fused = split(x, x, x, need_weights=False, attn_mask=mask, is_causal=causal)[0]
        calls_fused = len(fused_calls)
        seen = []
        handle = split.scores.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
        explicit = split(x, x, x, need_weights=False, attn_mask=mask, is_causal=causal)[0]
        handle.remove()
        monkeypatch.undo()
        expected = mha(x, x, x, need_weights=False, attn_mask=mask, is_causal=causal)[0]
    assert (calls_fused, len(fused_calls), seen) == (1, 1, [(12, 5, 5)])
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(explicit, expected, rtol=1e-5, atol=1e-6)


def test_a_transformer_is_described_on_the_meta_device_without_loading_torchs_compiler():
    """Random fills on the meta device run as torch's Python references, whose first call imports
    torch._dynamo (~1.5 s): a chip file's network is built there with them skipped."""
    script = ("import sys, torch\nfrom xbarsim.models import netspec\n"
              "for name in ('chargpt', 'vit'):\n    netspec.build({'zoo': name, 'kwargs': {}}, 'meta')\n"
              "print('torch._dynamo' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
