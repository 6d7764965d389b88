import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from xbarsim.config import PRESETS, ChipConfig, ConfigError, ConverterConfig
from xbarsim.errors import XbarsimError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates_and_names_its_source(name):
    cfg = ChipConfig.preset(name)
    assert cfg.name == name
    assert cfg.description


def test_pcm_preset_has_the_published_numbers():
    cfg = ChipConfig.preset("pcm")
    assert cfg.device.g_max_us == 25.0 and cfg.device.t0_s == 20.0
    assert (cfg.device.write_noise.c0, cfg.device.write_noise.c1, cfg.device.write_noise.c2) == (0.26348, 1.9650, -1.1731)
    assert cfg.device.read_noise.q_coeff == 0.0088 and cfg.device.read_noise.t_read_s == 250e-9
    assert cfg.tile.dac.bits == 8 and cfg.tile.adc.bits == 8 and cfg.tile.adc.levels == 127
    assert (cfg.tile.rows, cfg.tile.cols) == (512, 512)


def _error_text(exc_info) -> str:
    return str(exc_info.value)


def test_negative_conductance_names_the_field():
    with pytest.raises(ConfigError) as exc:
        ChipConfig.from_dict({"preset": "pcm", "device": {"g_min_us": -1.0}})
    assert _error_text(exc) == "device.g_min_us: must be a finite number >= 0 (got -1.0)"


def test_g_min_not_below_g_max_names_both_fields():
    with pytest.raises(ConfigError) as exc:
        ChipConfig.from_dict({"device": {"g_min_us": 30.0, "g_max_us": 25.0}})
    assert "g_min_us must be < g_max_us" in _error_text(exc)


def test_zero_bits_names_the_field_and_range():
    with pytest.raises(ValidationError) as exc:
        ChipConfig.preset("pcm").with_values({"tile.adc.bits": 0})
    assert "tile.adc.bits" in _error_text(exc) and "greater than or equal to 2" in _error_text(exc)


def test_unknown_preset_lists_the_choices():
    with pytest.raises(XbarsimError, match="unknown preset 'nope'.*aihwkit, aihwkit-hwa, gaussian, hermes, ideal, neurram, pcm, reram-cmo, rram"):
        ChipConfig.preset("nope")
    with pytest.raises(ConfigError, match=r"preset: unknown preset \['pcm'\]; choose from aihwkit, aihwkit-hwa, gaussian"):
        ChipConfig.from_dict({"preset": ["pcm"]})


def test_unknown_fields_are_rejected_not_ignored():
    with pytest.raises(ConfigError, match=r"^tile.adc.resolution: unknown field \(allowed: bits, range, bound\)$"):
        ChipConfig.from_dict({"tile": {"adc": {"resolution": 8}}})
    # a field of another noise kind is an error too
    with pytest.raises(ConfigError, match="^device.read_noise.q_coeff: unknown field"):
        ChipConfig.from_dict({"device": {"read_noise": {"kind": "additive", "sigma": 1.0, "q_coeff": 0.01}}})


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"bits": 8, "range": "none"}, "needs bits=None"),
        ({"range": "fixed"}, "needs a bound"),
        ({"range": "dynamic", "bound": 2.0}, "takes no bound"),
    ],
)
def test_converter_settings_must_be_consistent(fields, message):
    with pytest.raises(ValidationError, match=message):
        ConverterConfig(**fields)


def test_adc_cannot_be_dynamic():
    with pytest.raises(ConfigError, match="^tile: adc.range 'dynamic' is a DAC mode"):
        ChipConfig.from_dict({"tile": {"adc": {"bits": 8, "range": "dynamic"}}})


def test_stuck_probabilities_cannot_exceed_one():
    with pytest.raises(ConfigError, match="^device.faults: p_on \\+ p_off must be <= 1"):
        ChipConfig.from_dict({"device": {"faults": {"p_on": 0.7, "p_off": 0.4}}})


def test_yaml_file_merges_over_a_preset(tmp_path):
    path = tmp_path / "chip.yaml"
    path.write_text("preset: pcm\ntile:\n  adc:\n    bits: 6\n  rows: 256\n")
    cfg = ChipConfig.from_file(path)
    assert cfg.tile.adc.bits == 6 and cfg.tile.adc.bound == 10.0 and cfg.tile.rows == 256
    assert cfg.device.write_noise.kind == "pcm"


def test_json_round_trip(tmp_path):
    cfg = ChipConfig.preset("rram")
    path = tmp_path / "chip.json"
    path.write_text(cfg.to_json())
    assert ChipConfig.from_file(path) == cfg


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        ChipConfig.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        ChipConfig.from_file(bad)
    txt = tmp_path / "chip.txt"
    txt.write_text(json.dumps({}))
    with pytest.raises(ConfigError, match="chip.txt.*yaml"):
        ChipConfig.from_file(txt)


def test_with_values_rejects_unknown_paths():
    with pytest.raises(KeyError, match="tile.adc.bitz"):
        ChipConfig.preset("pcm").with_values({"tile.adc.bitz": 4})
    with pytest.raises(KeyError, match="nosection"):
        ChipConfig.preset("pcm").with_values({"nosection.x": 4})


# ---------------------------------------------------------------- strict values, safe files, errors for people
@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("tile: {rows: true}", "tile.rows: must be an integer >= 1 and <= 65536 (got true)"),
        ("tile: {adc: {bits: 7.5, range: fixed, bound: 1}}", "tile.adc.bits: must be an integer >= 2 and <= 24 or null (got 7.5)"),
        ("tile: {adc: {bits: 8.0, range: fixed, bound: 1}}", "tile.adc.bits: must be an integer >= 2 and <= 24 or null (got 8.0)"),
        ("tile: {rows: '64'}", "tile.rows: must be an integer >= 1 and <= 65536 (got '64')"),
        ("device: {t0_s: .inf}", "device.t0_s: must be a finite number > 0 (got inf)"),
        ("device: {t0_s: 1e400}", "device.t0_s: must be a finite number > 0 (got inf)"),
        ("device: {g_max_us: .nan}", "device.g_max_us: must be a finite number > 0 and <= 1000000.0 (got nan)"),
        ("mapping: {fold_batchnorm: 1}", "mapping.fold_batchnorm: must be true or false (got 1)"),
        ("device: {write_noise: {kind: absolute}}", "device.write_noise.sigma: missing (required)"),
        ("device: {drift: {kind: linear}}", "device.drift: unknown kind 'linear'; choose from 'none', 'lognormal', 'power_law', 'pcm', 'hermes', 'relaxation', 'log_time'"),
        ("tile: {read_noise_path: sideways}", "tile.read_noise_path: must be one of 'output_referred', 'per_device' (got 'sideways')"),
        ("tile: 5", "tile: must be a mapping (key: value) (got 5)"),
    ],
)
def test_wrong_values_get_one_line_naming_file_and_field(tmp_path, yaml_text, message):
    path = tmp_path / "chip.yaml"
    path.write_text(yaml_text + "\n")
    with pytest.raises(ConfigError) as exc:
        ChipConfig.from_file(path)
    assert str(exc.value) == f"{path}: {message}"


def test_every_problem_gets_its_own_line(tmp_path):
    path = tmp_path / "chip.yaml"
    path.write_text("tile: {rows: 0, cols: true}\ndevice: {t0_s: -1}\n")
    lines = str(pytest.raises(ConfigError, ChipConfig.from_file, path).value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["device.t0_s", "tile.rows", "tile.cols"]
    assert all(line.startswith(f"{path}: ") and "http" not in line for line in lines)


def test_yaml_numbers_without_a_dot_and_ints_for_floats_are_read_as_numbers(tmp_path):
    path = tmp_path / "chip.yaml"
    path.write_text("device: {g_max_us: 25, t0_s: 1e-3, read_noise: {kind: additive, sigma: 2E+1}}\n")
    cfg = ChipConfig.from_file(path)
    assert (cfg.device.g_max_us, cfg.device.t0_s, cfg.device.read_noise.sigma) == (25.0, 1e-3, 20.0)
    assert isinstance(cfg.device.g_max_us, float)


def test_with_values_and_presets_still_take_plain_python_values():
    cfg = ChipConfig.preset("rram").with_values({"tile.rows": 64, "device.g_max_us": 50, "tile.adc.bits": 6})
    assert (cfg.tile.rows, cfg.device.g_max_us, cfg.tile.adc.bits) == (64, 50.0, 6)
    with pytest.raises(ValidationError):
        cfg.with_values({"tile.rows": True})
    with pytest.raises(ValidationError):
        cfg.with_values({"device.t0_s": float("inf")})


def test_an_anchor_bomb_is_refused_at_its_first_anchor(tmp_path):
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\n")  # 9^9 = 387 million strings when expanded
    with pytest.raises(ConfigError, match=r"bomb.yaml: not valid YAML: anchors and aliases .* not allowed.*line 1"):
        ChipConfig.from_file(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89HDF\r\n\x1a\n\x00\x00\xff\xfe", "not a text file"),
        (b"tile: {rows: 64}\x00\n", "not a text file"),
        (b"tile: {rows: 64}\ntile: {rows: 32}\n", "duplicate key 'tile'"),
        (b"!!python/object/apply:os.system ['echo pwned']\n", "could not determine a constructor"),
        (b"- 1\n- 2\n", "expected a mapping .* at the top level, found a list"),
        (b"tile: [\n", "not valid YAML"),
    ],
)
def test_files_that_are_not_plain_yaml_name_the_file(tmp_path, content, message):
    path = tmp_path / "chip.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"chip config {path}: .*{message}"):
        ChipConfig.from_file(path)


def test_json_infinity_and_nan_are_refused(tmp_path):
    path = tmp_path / "chip.json"
    path.write_text('{"device": {"t0_s": Infinity}}')
    with pytest.raises(ConfigError, match="chip.json: Infinity is not a number"):
        ChipConfig.from_file(path)
    path.write_text('{"device": {"t0_s": 1e400}}')
    with pytest.raises(ConfigError, match=r"chip.json: device.t0_s: must be a finite number > 0 \(got inf\)"):
        ChipConfig.from_file(path)


def test_a_huge_input_is_shown_in_short(tmp_path):
    path = tmp_path / "chip.yaml"
    path.write_text("name: [" + ", ".join(["x" * 100] * 500) + "]\n")
    message = str(pytest.raises(ConfigError, ChipConfig.from_file, path).value)
    assert message.startswith(f"{path}: name: must be a string (got [") and len(message) < 300 + len(str(path))


_PATHS = ["name", "device", "device.t0_s", "device.g_max_us", "device.write_noise", "device.write_noise.sigma",
          "device.read_noise", "device.faults.p_on", "tile", "tile.rows", "tile.adc", "tile.adc.bits", "tile.adc.range",
          "mapping.bias", "drift_compensation", "preset", "bogus", "tile.bogus"]  # fmt: skip
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["kind", "sigma", "bits", "x"]), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(_PATHS), _VALUES, max_size=4))
def test_any_values_give_a_config_or_one_clear_line_per_problem(settings):
    data: dict = {}
    for dotted, value in settings.items():
        node = data
        *sections, last = dotted.split(".")
        for section in sections:
            node = node.setdefault(section, {}) if isinstance(node.get(section, {}), dict) else {}
        node[last] = value
    try:
        cfg = ChipConfig.from_dict(data, source="chip.yaml")
    except ConfigError as exc:
        lines = str(exc).splitlines()
        assert lines and all(line.startswith("chip.yaml: ") and len(line) < 400 and "http" not in line for line in lines)
    else:
        assert ChipConfig.model_validate_json(cfg.to_json()) == cfg  # what is accepted can be saved and read back


def test_chip_label_says_where_the_config_came_from(tmp_path):
    path = tmp_path / "my_chip.yaml"
    path.write_text("preset: pcm\ntile: {adc: {bits: 6}}\n")
    assert ChipConfig.from_file(path).name == "my_chip.yaml"
    assert ChipConfig.from_dict({"preset": "pcm", "tile": {"rows": 64}}).name == "pcm + overrides"
    assert ChipConfig.from_dict({"preset": "pcm"}).name == "pcm"
    assert ChipConfig.from_dict({"preset": "pcm", "name": "mine"}).name == "mine"
