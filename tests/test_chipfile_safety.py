"""Chip files are data: forged or corrupt files are refused in one line, run nothing, and stay untouched."""

import json
import re
import shutil

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from xbarsim import ChipConfig, load_chip, map_model
from xbarsim.cli import main
from xbarsim.crossbar.laws.device import program, programmed_checksum
from xbarsim.crossbar.laws.encode import signed_targets, targets_from_signed
from xbarsim.errors import XbarsimError
from xbarsim.mapping.blocks import DenoisingBlock
from xbarsim.mapping.chipcheck import ChipFileError
from xbarsim.models import zoo

CONV = "layers/features.0/m0"  # LeNet-5's first convolution: 25 inputs x 6 outputs


@pytest.fixture(scope="module")
def valid_chip(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ChipConfig.preset("pcm").with_values({"tile.rows": 16, "tile.cols": 8, "device.faults.p_on": 0.01, "device.faults.p_off": 0.01})
    analog = ["features.0", "classifier.1", "classifier.3", "classifier.5"]  # features.3 stays digital
    chip = map_model(zoo.build("lenet5", image_size=8), cfg, seed=3, layers=analog)
    chip.attach_block("classifier.3", DenoisingBlock(84, 8, -1))
    path = tmp_path_factory.mktemp("valid") / "chip.h5"
    chip.save(path)
    return path


def _network(f, description) -> None:
    f["model"].attrs["network_json"] = json.dumps(description)


def _replace(f, name: str, data, **kwargs) -> None:
    del f[name]
    f.create_dataset(name, data=data, **kwargs)


def _edit_array(name: str, change):
    def edit(f, marker):
        values = f[name][()].copy()
        change(values)
        _replace(f, name, values)

    return edit


def _config(change):
    def edit(f, marker):
        cfg = json.loads(f["config"].attrs["json"])
        change(cfg)
        f["config"].attrs["json"] = json.dumps(cfg)

    return edit


def _set(values, index, value):
    values[index] = value


def _forge_targets(f, group: str, targets) -> None:
    """New targets with a matching checksum of the programmed state: a forgery only the network can catch."""
    cfg = ChipConfig.model_validate_json(f["config"].attrs["json"])
    g_prog, stuck = program(targets_from_signed(targets, cfg.device.g_min_us), cfg.device, int(f[group].attrs["seed"]))
    _replace(f, f"{group}/targets", targets)
    f[group].attrs["programmed_crc32"] = programmed_checksum(g_prog, stuck)


_ENCODER_LAYER = {"type": "TransformerEncoderLayer", "args": {"d_model": 8, "nhead": 2}}


def _encoder(layer, **args) -> dict:
    return {"layers": {"type": "TransformerEncoder", "args": {"encoder_layer": layer, "num_layers": 2, **args}}}


def _old_format(f, marker):
    f.attrs["format_version"] = 1
    f["model"].attrs.update({"class_path": "subprocess:run", "kwargs_json": json.dumps({"args": ["touch", str(marker)]})})


# id -> (edit of the open file (h5py, mode "a"), words the one error line must hold besides the file name)
CASES = {
    "zoo-subprocess-run": (lambda f, m: _network(f, {"zoo": "subprocess:run", "kwargs": {"args": ["touch", str(m)]}}),
                           ["model", "unknown zoo model", "subprocess:run"]),
    "layer-subprocess-run": (lambda f, m: _network(f, {"layers": {"type": "subprocess:run", "args": {"args": ["touch", str(m)]}}}),
                             ["model", "not on the allow-list", "subprocess:run"]),
    "layer-os-system": (lambda f, m: _network(f, {"layers": {"type": "Sequential", "children": [
                            ["0", {"type": "os:system", "args": {"command": f"touch {m}"}}]]}}),
                        ["layer '0'", "os:system", "allow-list"]),
    "zoo-builtins-eval": (lambda f, m: _network(f, {"zoo": "builtins:eval", "kwargs": {"source": f"open({str(m)!r}, 'w')"}}),
                          ["unknown zoo model", "builtins:eval"]),
    "old-format-class-path": (_old_format, ["format version 1", "reads version 2"]),
    "unknown-zoo-model": (lambda f, m: _network(f, {"zoo": "resnet1000", "kwargs": {}}), ["unknown zoo model", "resnet1000"]),
    "zoo-unknown-argument": (lambda f, m: _network(f, {"zoo": "lenet5", "kwargs": {"image_size": 8, "evil": 1}}),
                             ["lenet5", "no argument", "evil"]),
    "zoo-ill-typed-argument": (lambda f, m: _network(f, {"zoo": "lenet5", "kwargs": {"image_size": "8; rm -rf ~"}}),
                               ["lenet5", "image_size", "int"]),
    "nn-type-not-allowed": (lambda f, m: _network(f, {"layers": {"type": "Sequential", "children": [
                                ["enc", {"type": "Bilinear", "args": {"in1_features": 8, "in2_features": 2, "out_features": 2}}]]}}),
                            ["layer 'enc'", "Bilinear", "allow-list"]),
    "nested-layer-os-system": (lambda f, m: _network(f, _encoder({"type": "os:system", "args": {"command": f"touch {m}"}})),
                               ["TransformerEncoder argument encoder_layer", "TransformerEncoderLayer layer description", "os:system"]),
    "nested-layer-of-another-type": (lambda f, m: _network(f, _encoder({"type": "Linear", "args": {"in_features": 8, "out_features": 8}})),
                                     ["TransformerEncoder argument encoder_layer", "TransformerEncoderLayer layer description"]),
    "nested-layer-as-text": (lambda f, m: _network(f, _encoder("subprocess:run")),
                             ["TransformerEncoder argument encoder_layer", "layer description", "subprocess:run"]),
    "encoder-of-a-billion-layers": (lambda f, m: _network(f, _encoder(_ENCODER_LAYER, num_layers=10**9)),
                                    ["TransformerEncoder argument num_layers", "from 1 to 1000"]),
    "encoder-layer-activation-by-name": (lambda f, m: _network(f, _encoder({**_ENCODER_LAYER, "args": {"d_model": 8, "nhead": 2,
                                                                                                       "activation": "os.system"}})),
                                         ["layer 'encoder_layer'", "activation", "'relu', 'gelu'"]),
    "encoder-norm-a-sequential": (lambda f, m: _network(f, _encoder(_ENCODER_LAYER, norm={"type": "Sequential", "children": []})),
                                  ["argument norm", "null or a LayerNorm layer description"]),
    "attention-heads-do-not-divide": (lambda f, m: _network(f, {"layers": {"type": "MultiheadAttention",
                                                                           "args": {"embed_dim": 10, "num_heads": 3}}}),
                                      ["MultiheadAttention cannot be built", "divisible"]),
    "nn-bad-argument": (lambda f, m: _network(f, {"layers": {"type": "Linear", "args": {"in_features": -4, "out_features": 2}}}),
                        ["Linear", "in_features", "integer >= 1"]),
    "huge-network-small-file": (lambda f, m: _network(f, {"zoo": "lenet5", "kwargs": {"image_size": 8, "num_classes": 10**9}}),
                                ["classifier.5", "the network"]),
    "targets-minus-1e30": (_edit_array(f"{CONV}/targets", lambda v: _set(v, (3, 2), -1e30)),
                           ["layer 'features.0'", "m0/targets", "target conductances", "-1e+30"]),
    "targets-far-above-g-max": (_edit_array(f"{CONV}/targets", lambda v: _set(v, (0, 0), 1e6)),
                                ["layer 'features.0'", "m0/targets", "target conductances", "1e+06"]),
    "targets-nan": (_edit_array(f"{CONV}/targets", lambda v: _set(v, (1, 1), np.nan)), ["features.0", "m0/targets", "NaN"]),
    "targets-inf": (_edit_array(f"{CONV}/targets", lambda v: _set(v, (2, 3), np.inf)), ["features.0", "m0/targets", "infinite"]),
    "targets-byte-strings": (lambda f, m: _replace(f, f"{CONV}/targets", np.full((25, 6), b"12.5", dtype="S8")),
                             ["features.0", "m0/targets", "byte strings"]),
    "targets-complex": (lambda f, m: _replace(f, f"{CONV}/targets", f[f"{CONV}/targets"][()].astype(np.complex64) * 1j),
                        ["features.0", "m0/targets", "complex"]),
    "targets-variable-length-strings": (lambda f, m: _replace(f, f"{CONV}/targets", np.full((25, 6), "1.0", dtype=object),
                                                              dtype=h5py.string_dtype()),
                                        ["features.0", "m0/targets", "objects"]),
    "targets-wrong-rank": (lambda f, m: _replace(f, f"{CONV}/targets", np.ones((2, 25, 6), np.float32)),
                           ["features.0", "m0/targets", "shape (inputs, outputs)"]),
    "targets-one-output-short": (lambda f, m: _replace(f, f"{CONV}/targets", f[f"{CONV}/targets"][()][:, :5]),
                                 ["features.0", "m0/scales", "shape"]),
    "matrix-consistent-but-wrong-for-the-layer": (lambda f, m: _forge_targets(f, CONV, f[f"{CONV}/targets"][()][:20]),
                                                  ["features.0", "m0/targets", "20 inputs"]),
    "stuck-codes-injected": (lambda f, m: f[CONV].create_dataset("stuck", data=np.full((2, 25, 6), 7, np.int8)),
                             ["features.0", "group m0", "unexpected", "stuck"]),
    "programmed-checksum-forged": (lambda f, m: f[CONV].attrs.__setitem__("programmed_crc32", f[CONV].attrs["programmed_crc32"] ^ 1),
                                   ["features.0", "group m0", "programmed_crc32"]),
    "matrix-seed-changed": (lambda f, m: f[CONV].attrs.__setitem__("seed", f[CONV].attrs["seed"] + 1),
                            ["features.0", "group m0", "programmed_crc32"]),
    "scales-zero": (_edit_array(f"{CONV}/scales", lambda v: _set(v, (0, 0), 0.0)), ["features.0", "m0/scales", "> 0"]),
    "negative-read-counter": (lambda f, m: f[CONV].attrs.__setitem__("reads", -5), ["features.0", "group m0", "reads", ">= 0", "-5"]),
    "negative-drift-time": (lambda f, m: f[CONV].attrs.__setitem__("t_s", -1.0), ["features.0", "t_s", ">= 0"]),
    "seed-as-text": (lambda f, m: f.attrs.__setitem__("seed", "seven"), ["seed", "integer"]),
    "missing-dataset": (lambda f, m: f[CONV].__delitem__("targets"), ["features.0", "group m0", "missing", "targets"]),
    "external-link": (lambda f, m: [f[CONV].__delitem__("targets"), f[CONV].__setitem__("targets", h5py.ExternalLink("/etc/passwd", "/x"))],
                      ["features.0", "targets", "link"]),
    "unwritten-huge-dataset": (lambda f, m: [f[CONV].__delitem__("targets"),
                                             f[CONV].create_dataset("targets", shape=(40000, 40000), dtype=np.float32, chunks=(1000, 1000))],
                               ["features.0", "m0/targets", "stores only"]),
    "digital-weight-nan": (_edit_array("digital/features.3.bias", lambda v: _set(v, 0, np.nan)), ["digital/features.3.bias", "NaN"]),
    "digital-weight-wrong-shape": (lambda f, m: _replace(f, "digital/features.3.bias", np.zeros(3, np.float32)),
                                   ["digital/features.3.bias", "shape"]),
    "layer-spec-mismatch": (lambda f, m: f["layers/features.0"].attrs.__setitem__(
                                "spec_json", f["layers/features.0"].attrs["spec_json"].replace('"stride": [1, 1]', '"stride": [2, 2]')),
                            ["features.0", "spec_json", "does not match", "stride [2, 2] (network: [1, 1])"]),
    "layer-renamed": (lambda f, m: f["layers"].move("features.0", "features.9"), ["features.9", "no module"]),
    "terminal-escape-in-a-name": (lambda f, m: f["digital"].move("features.3.bias", "features.3.bias\x1b[2J"),
                                  ["dataset digital", "unexpected", "\\x1b[2J"]),
    "block-on-unknown-layer": (lambda f, m: f["blocks/b0"].attrs.__setitem__("layer", "nowhere"), ["block", "nowhere"]),
    "block-wrong-channels": (lambda f, m: [f["blocks/b0"].attrs.__setitem__("spec_json", json.dumps({"channels": 10, "hidden": 8, "channel_dim": -1})),
                                           _replace(f, "blocks/b0/down.weight", np.zeros((8, 10), np.float32)),
                                           _replace(f, "blocks/b0/up.weight", np.zeros((10, 8), np.float32)),
                                           _replace(f, "blocks/b0/up.bias", np.zeros(10, np.float32))],
                             ["classifier.3", "channels"]),
    "folded-pair-bogus": (lambda f, m: f["model"].attrs.__setitem__("folded_json", json.dumps([["features.1", "classifier.0"]])),
                          ["model", "folded_json", "features.1"]),
    "config-not-json": (lambda f, m: f["config"].attrs.__setitem__("json", "{not json"), ["config", "JSON"]),
    "config-invalid-value": (_config(lambda c: c["tile"].__setitem__("rows", 0)), ["config", "tile.rows"]),
    "config-infinite-value": (lambda f, m: f["config"].attrs.__setitem__("json", re.sub(r'"t0_s":[0-9.e+-]+', '"t0_s":1e400',
                                                                                               f["config"].attrs["json"])),
                              ["config", "finite"]),
    "drift-reference-nan": (_edit_array(f"{CONV}/drift_reference", lambda v: _set(v, 0, np.nan)),
                            ["layer 'features.0'", "m0/drift_reference", "NaN"]),
    "drift-reference-negative": (_edit_array(f"{CONV}/drift_reference", lambda v: _set(v, 0, -2.0)),
                                 ["layer 'features.0'", "m0/drift_reference", ">= 0"]),
    "drift-reference-per-column": (lambda f, m: _replace(f, f"{CONV}/drift_reference", np.ones(6, np.float32)),
                                   ["layer 'features.0'", "m0/drift_reference", "shape (6,)", "global"]),
    "drift-reference-byte-strings": (lambda f, m: _replace(f, f"{CONV}/drift_reference", np.array([b"1.5"])),
                                     ["layer 'features.0'", "m0/drift_reference", "byte strings"]),
    "drift-gain-without-a-second-read": (lambda f, m: f[CONV].create_dataset("drift_gain", data=np.ones(1, np.float32)),
                                         ["layer 'features.0'", "m0/drift_gain", "read again"]),
    "drift-gain-without-reference": (lambda f, m: [f[CONV].attrs.__setitem__("t_s", 60.0), f[CONV].__delitem__("drift_reference"),
                                                   f[CONV].create_dataset("drift_gain", data=np.ones(1, np.float32))],
                                     ["layer 'features.0'", "m0/drift_reference", "missing"]),
    "drift-reference-without-compensation": (_config(lambda c: c.__setitem__("drift_compensation", "none")),
                                             ["m0/drift_reference", "drift_compensation is 'none'"]),
    "format-version-99": (lambda f, m: f.attrs.__setitem__("format_version", 99), ["format version 99", "reads version 2"]),
    # issue 22: each was ignored, or reported as something else
    "extra-root-group": (lambda f, m: f.create_group("hooks").attrs.__setitem__("run", "os:system"),
                         ["unexpected members ['hooks'] at the root", "config, model, digital, layers, blocks"]),
    "extra-root-dataset": (lambda f, m: f.create_dataset("payload", data=np.zeros(3)), ["unexpected members ['payload'] at the root"]),
    "dataset-inside-the-model-group": (lambda f, m: f["model"].create_dataset("network", data=np.zeros(3)),
                                       ["model", "unexpected members ['network']", "attributes only"]),
    "targets-fewer-inputs-checksum-untouched": (lambda f, m: _replace(f, f"{CONV}/targets", f[f"{CONV}/targets"][()][:20]),
                                                ["features.0", "m0/targets", "holds 20 inputs x 6 outputs", "needs 25 x 6"]),
    "targets-transposed": (lambda f, m: _replace(f, f"{CONV}/targets", f[f"{CONV}/targets"][()].T.copy()),
                           ["features.0", "m0/"]),
    "drift-time-1e300": (lambda f, m: f[CONV].attrs.__setitem__("t_s", 1e300), ["features.0", "t_s", "at most 1e+12 s"]),
}  # fmt: skip


def _truncate(path, marker):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path, marker):
    path.write_bytes(np.random.default_rng(0).bytes(20000))


RAW_CASES = {"truncated-file": (_truncate, ["not a readable HDF5 file"]), "garbage-file": (_garbage, ["not a readable HDF5 file"])}


def _run_eval(path, capsys):
    capsys.readouterr()
    code = main(["eval", str(path), "--data", "digits"])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_refused(path, words, marker, capsys):
    before = path.read_bytes()
    code, out, err = _run_eval(path, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0
    assert "Traceback" not in out + err
    assert len(lines) == 1, err
    assert path.name in lines[0] and all(word in lines[0] for word in words), lines[0]
    assert lines[0].isprintable()
    assert path.read_bytes() == before
    assert not marker.exists()


@pytest.mark.parametrize("case", list(CASES))
def test_a_forged_or_corrupt_chip_file_is_refused_in_one_line(case, valid_chip, tmp_path, capsys):
    edit, words = CASES[case]
    path, marker = tmp_path / f"{case}.h5", tmp_path / "marker"
    shutil.copy(valid_chip, path)
    with h5py.File(path, "a") as f:
        edit(f, marker)
    _assert_refused(path, words, marker, capsys)


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_a_damaged_file_is_refused_in_one_line(case, valid_chip, tmp_path, capsys):
    damage, words = RAW_CASES[case]
    path = tmp_path / f"{case}.h5"
    shutil.copy(valid_chip, path)
    damage(path, None)
    _assert_refused(path, words, tmp_path / "marker", capsys)


def test_the_untouched_chip_file_evaluates(valid_chip, capsys):
    code, out, err = _run_eval(valid_chip, capsys)
    assert code == 0, err
    assert "test accuracy" in out


def test_targets_are_stored_as_one_signed_number_per_device_pair():
    g_target = np.array([[[0.0, 3.5, 0.0]], [[2.0, 0.0, 0.0]]], np.float32)  # (2, 1, 3): G+ and G-, g_min = 0
    signed = signed_targets(g_target, 0.0)
    assert signed.tolist() == [[-2.0, 3.5, 0.0]]
    assert np.array_equal(targets_from_signed(signed, 0.0), g_target)
    shifted = g_target + np.float32(1.5)  # g_min = 1.5
    assert np.array_equal(targets_from_signed(signed_targets(shifted, 1.5), 1.5), shifted)
    with pytest.raises(ValueError, match="g_min on one side"):
        signed_targets(np.ones((2, 1, 1), np.float32), 0.0)


@pytest.mark.parametrize("shape", [(3, 5), (700, 300)])  # serial and threaded kernels
def test_signed_targets_equal_the_numpy_formula(shape):
    from xbarsim.crossbar.laws.encode import encode, weight_scales
    from xbarsim.crossbar.grid import TileGrid

    w_t = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    w_t[0, :3] = [0.0, -0.0, 1e-30]
    grid = TileGrid.for_matrix(*shape, 256, 128)
    g_target = encode(w_t, weight_scales(w_t, grid, "column"), grid, 0.5, 25.0)
    g_pos, g_neg = g_target
    expected = np.where(g_neg == np.float32(0.5), g_pos, -g_neg).astype(np.float32)
    signed = signed_targets(g_target, 0.5)
    assert np.array_equal(signed.view(np.uint32), expected.view(np.uint32))
    unpacked = targets_from_signed(signed, 0.5)
    assert np.array_equal(unpacked.view(np.uint32), g_target.view(np.uint32))
    broken = g_target.copy()
    broken[1, -1, -1] = broken[0, -1, -1] = 3.0
    with pytest.raises(ValueError, match="g_min on one side"):
        signed_targets(broken, 0.5)


class TwoBranches(nn.Module):
    """A network of the user's own: only the user can say how to build it."""

    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Linear(6, 3), nn.Linear(6, 3)

    def forward(self, x):
        return torch.cat([self.left(x), torch.relu(self.right(x))], dim=1)


def test_a_custom_network_needs_the_model_and_then_round_trips(tmp_path, capsys):
    torch.manual_seed(1)
    model = TwoBranches()
    chip = map_model(model, ChipConfig.preset("rram"), seed=5)
    path = tmp_path / "custom.h5"
    chip.save(path)
    with pytest.raises(ChipFileError, match=r"custom.h5: model: the file does not describe its network as data .*TwoBranches.*pass the model"):
        load_chip(path)
    code, _, err = _run_eval(path, capsys)
    assert code != 0 and "--model" in err and len(err.strip().splitlines()) == 1
    fresh = TwoBranches()
    x = torch.randn(4, 6)
    with torch.no_grad():
        expected = chip(x)
        loaded = load_chip(path, model=fresh)
        assert torch.equal(loaded(x), expected)
    loaded.save(tmp_path / "again.h5")  # the user's model is still needed for the copy
    with pytest.raises(ChipFileError, match="pass the model"):
        load_chip(tmp_path / "again.h5")


def test_a_plain_sequential_of_standard_layers_needs_no_model(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Sequential(nn.Linear(64, 16), nn.GELU(), nn.BatchNorm1d(16), nn.Dropout(0.1)), nn.Linear(16, 10), nn.LogSoftmax(dim=1),
    ).eval()  # fmt: skip
    unfolded = model[5][2]  # after the GELU: stays a digital BatchNorm, its statistics come from the file
    unfolded.running_mean.normal_()
    unfolded.running_var.uniform_(0.5, 2.0)
    chip = map_model(model, ChipConfig.preset("pcm").with_values({"tile.rows": 32, "tile.cols": 16}), seed=4)
    path = tmp_path / "seq.h5"
    chip.save(path)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        expected = chip(x)
        loaded = load_chip(path)
        assert torch.equal(loaded(x), expected)
    assert str(loaded.network) == str(chip.network)
    for a, b in zip(loaded.chip.matrices(), chip.chip.matrices()):
        assert np.array_equal(a.tiles.g_prog, b.tiles.g_prog) and np.array_equal(a.tiles.stuck, b.tiles.stuck)


def test_chip_files_get_ordinary_permissions(valid_chip, tmp_path):
    path = tmp_path / "perm.h5"
    load_chip(valid_chip).save(path)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_zoo_arguments_are_checked_against_the_signature():
    assert zoo.build("mlp", hidden=[8], in_features=np.int64(64)).init_kwargs["hidden"] == (8,)
    with pytest.raises(XbarsimError, match="zoo model 'mlp' has no argument 'hiden'"):
        zoo.build("mlp", hiden=[8])
    with pytest.raises(XbarsimError, match="argument num_classes must be of type int .got True"):
        zoo.build("lenet5", num_classes=True)
    with pytest.raises(XbarsimError, match="argument width must be of type float .got nan"):
        zoo.build("vgg11", width=float("nan"))


def test_the_cli_takes_the_network_from_the_user_when_asked(valid_chip, capsys):
    capsys.readouterr()
    assert main(["eval", str(valid_chip), "--data", "digits", "--model", "lenet5", "--model-args", '{"image_size": 8}']) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["eval", str(valid_chip), "--data", "digits", "--model", "lenet5", "--model-args", '{"image_size": 8, "num_classes": 5}']) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "chip.h5" in err and "classifier.5" in err
    assert main(["eval", str(valid_chip), "--data", "digits", "--model-args", '{"image_size": 8}']) != 0
    assert "--model-args needs --model" in capsys.readouterr().err
