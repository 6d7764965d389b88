"""Progress of long Python-level calls: mapping, saving and loading a chip."""

import pytest
import torch

from xbarsim import ChipConfig, load_chip, map_model
from xbarsim import progress as progress_module
from xbarsim.models import zoo


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    return zoo.build("lenet5", image_size=8)


def _calls(lenet, tmp_path, progress):
    chip = map_model(lenet, ChipConfig.preset("pcm"), progress=progress)
    chip.save(tmp_path / "c.h5", progress=progress)
    return load_chip(tmp_path / "c.h5", progress=progress)


def test_bars_when_asked_for(lenet, tmp_path, capsys):
    loaded = _calls(lenet, tmp_path, True)
    err = capsys.readouterr().err
    for desc in ("map", "save chip", "load chip"):
        assert f"{desc}: 100%" in err and f"{len(loaded.chip.layers)}/{len(loaded.chip.layers)}" in err


def test_no_bars_when_refused_or_quick(lenet, tmp_path, capsys, monkeypatch):
    _calls(lenet, tmp_path, False)
    monkeypatch.setattr(progress_module, "AUTO_AFTER_S", 60.0)  # LeNet-5 is quick, even on a busy machine
    _calls(lenet, tmp_path, None)
    assert capsys.readouterr().err == ""


def test_automatic_bars_once_a_call_runs_long(lenet, tmp_path, monkeypatch):
    bars = []

    def recording_tqdm(items, **options):  # a bar's options, not its timing: a quick call may finish unseen
        bars.append(options)
        return items

    monkeypatch.setattr(progress_module, "tqdm", recording_tqdm)
    _calls(lenet, tmp_path, None)
    assert [bar["desc"] for bar in bars] == ["map", "save chip", "load chip"]
    assert all(bar["delay"] == progress_module.AUTO_AFTER_S and not bar["disable"] for bar in bars)
