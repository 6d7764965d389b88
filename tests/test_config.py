import json

import pytest
from pydantic import ValidationError

from xbarsim.config import PRESETS, ChipConfig, ConverterConfig


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
    with pytest.raises(ValidationError) as exc:
        ChipConfig.from_dict({"preset": "pcm", "device": {"g_min_us": -1.0}})
    assert "device.g_min_us" in _error_text(exc) and "greater than or equal to 0" in _error_text(exc)


def test_g_min_not_below_g_max_names_both_fields():
    with pytest.raises(ValidationError) as exc:
        ChipConfig.from_dict({"device": {"g_min_us": 30.0, "g_max_us": 25.0}})
    assert "g_min_us must be < g_max_us" in _error_text(exc)


def test_zero_bits_names_the_field_and_range():
    with pytest.raises(ValidationError) as exc:
        ChipConfig.preset("pcm").with_values({"tile.adc.bits": 0})
    assert "tile.adc.bits" in _error_text(exc) and "greater than or equal to 2" in _error_text(exc)


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ValueError, match="unknown preset 'nope'.*gaussian, ideal, pcm, rram"):
        ChipConfig.preset("nope")


def test_unknown_fields_are_rejected_not_ignored():
    with pytest.raises(ValidationError, match="tile.adc.resolution"):
        ChipConfig.from_dict({"tile": {"adc": {"resolution": 8}}})
    # a field of another noise kind is an error too
    with pytest.raises(ValidationError, match="q_coeff"):
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
    with pytest.raises(ValidationError, match="adc.range 'dynamic' is a DAC mode"):
        ChipConfig.from_dict({"tile": {"adc": {"bits": 8, "range": "dynamic"}}})


def test_stuck_probabilities_cannot_exceed_one():
    with pytest.raises(ValidationError, match="p_on \\+ p_off must be <= 1"):
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
    with pytest.raises(ValueError, match="bad.json"):
        ChipConfig.from_file(bad)
    txt = tmp_path / "chip.txt"
    txt.write_text(json.dumps({}))
    with pytest.raises(ValueError, match="chip.txt.*yaml"):
        ChipConfig.from_file(txt)


def test_with_values_rejects_unknown_paths():
    with pytest.raises(KeyError, match="tile.adc.bitz"):
        ChipConfig.preset("pcm").with_values({"tile.adc.bitz": 4})
    with pytest.raises(KeyError, match="nosection"):
        ChipConfig.preset("pcm").with_values({"nosection.x": 4})
