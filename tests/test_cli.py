import argparse

import pytest
import torch

from xbarsim.cli import main, parse_duration
from xbarsim.models import data, zoo
from xbarsim.models.checkpoint import load_network, save_checkpoint
from xbarsim.models.training import TrainConfig, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model = zoo.build("lenet5", image_size=8)
    train(model, data.digits(), TrainConfig(epochs=8), progress=False)
    checkpoint = folder / "lenet5.pt"
    save_checkpoint(model, checkpoint)
    torch.save(model.state_dict(), folder / "state.pt")
    torch.save(model, folder / "whole.pt")
    return folder


def test_map_then_eval(trained, capsys):
    chip_file = trained / "chip.h5"
    assert main(["map", str(trained / "lenet5.pt"), "--chip", "pcm", "-o", str(chip_file)]) == 0
    assert "features.0" in capsys.readouterr().out
    assert main(["eval", str(chip_file), "--data", "digits"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("accuracy ")[1].split("%")[0])
    assert accuracy > 80, out
    assert main(["eval", str(chip_file), "--drift", "1d"]) == 0
    assert "t = 86400 s" in capsys.readouterr().out


def test_state_dicts_need_the_model_name(trained, capsys):
    assert main(["map", str(trained / "state.pt"), "--chip", "ideal", "-o", str(trained / "x.h5")]) == 2
    assert "plain state_dict: name the model" in capsys.readouterr().err
    args = ["map", str(trained / "state.pt"), "--model", "lenet5", "--model-args", '{"image_size": 8}', "--chip", "ideal", "-o", str(trained / "x.h5")]
    assert main(args) == 0


def test_pickled_modules_need_consent(trained, capsys):
    with pytest.raises(ValueError, match="pickled Python objects"):
        load_network(trained / "whole.pt")
    assert isinstance(load_network(trained / "whole.pt", allow_pickle=True), zoo.LeNet5)
    assert main(["map", str(trained / "whole.pt"), "--chip", "nosuchchip.yaml", "--allow-pickle", "-o", str(trained / "y.h5")]) == 2
    assert "nosuchchip.yaml" in capsys.readouterr().err


def test_chip_yaml_files(trained, tmp_path):
    config = tmp_path / "chip.yaml"
    config.write_text("preset: pcm\ntile: {rows: 64, cols: 64}\n")
    assert main(["map", str(trained / "lenet5.pt"), "--chip", str(config), "-o", str(tmp_path / "c.h5")]) == 0


def test_durations():
    assert parse_duration("3600") == 3600
    assert parse_duration("1h") == 3600 and parse_duration("1d") == 86400 and parse_duration("2w") == 14 * 86400
    assert parse_duration("1y") == pytest.approx(365.25 * 86400)
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_duration("soon")
    with pytest.raises(argparse.ArgumentTypeError, match=">= 0"):
        parse_duration("-5s")


def test_demo_runs_and_prints_the_table(capsys, tmp_path):
    assert main(["demo", "--epochs", "3", "--chips", "2", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for label in ("float32 (torch)", "ideal chip", "pcm, after programming", "pcm, drift 1 year", "read noise x ADC bits"):
        assert label in out
    assert (tmp_path / "sweep.h5").is_file() and (tmp_path / "sweep_heatmap.png").is_file()


def _leaf_parsers(parser: argparse.ArgumentParser):
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield parser
    for action in subcommands:
        for child in set(action.choices.values()):
            yield from _leaf_parsers(child)


def test_every_option_has_help_and_shows_its_default(monkeypatch):
    from xbarsim.cli import build_parser

    monkeypatch.setenv("COLUMNS", "1000")  # no wrapped lines

    leaves = list(_leaf_parsers(build_parser()))
    assert len(leaves) >= 13  # every command and bench subcommand
    for parser in leaves:
        for action in parser._actions:
            assert action.help, f"{parser.prog} {action.option_strings or action.dest} has no help"
        text = parser.format_help()
        for action in parser._actions:
            if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
                assert f"(default: {action.default})" in text, (parser.prog, action.dest)


def test_numeric_option_types():
    from xbarsim.cli import FRACTION, POSITIVE, POSITIVE_INT, SEED, bounded

    assert POSITIVE_INT("3") == 3 and SEED("0") == 0 and FRACTION("1") == 1.0 and POSITIVE("1e-3") == 1e-3
    assert bounded(float, 0, 100, above=True)("100") == 100.0
    for parse, text in [(POSITIVE_INT, "0"), (POSITIVE_INT, "1e3"), (POSITIVE_INT, "2.0"), (SEED, str(2**63)),
                        (POSITIVE, "0"), (POSITIVE, "inf"), (FRACTION, "nan"), (FRACTION, "-0.1")]:  # fmt: skip
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {text!r}"):
            parse(text)


def test_calibrate_writes_in_place_only_when_told(lenet_files, tmp_path, capsys):
    import shutil

    chip_file = tmp_path / "chip.h5"
    shutil.copy(lenet_files / "chip.h5", chip_file)
    before = chip_file.read_bytes()
    assert main(["calibrate", str(chip_file), "--compensation", "global", "-o", str(chip_file)]) == 2
    assert "this is also an input" in capsys.readouterr().err and chip_file.read_bytes() == before
    assert main(["calibrate", str(chip_file), "--compensation", "column", "--in-place"]) == 0  # the pcm chip's is global
    assert "drift compensation: global -> column" in capsys.readouterr().out and chip_file.read_bytes() != before


def test_in_place_through_a_link_writes_the_file_it_names(lenet_files, tmp_path, capsys):
    import shutil

    shutil.copy(lenet_files / "chip.h5", tmp_path / "chip.h5")
    (tmp_path / "link.h5").symlink_to("chip.h5")
    before = (tmp_path / "chip.h5").read_bytes()
    assert main(["calibrate", str(tmp_path / "link.h5"), "--compensation", "column", "--in-place"]) == 0
    assert (tmp_path / "link.h5").is_symlink() and (tmp_path / "chip.h5").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chip.h5", "link.h5"]


MYNET = """from torch import nn


class MyNet(nn.Module):
    def __init__(self, hidden=16):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.body(x)
"""


def test_model_class_in_the_working_folder_is_found_as_python_m_finds_it(tmp_path, monkeypatch, capsys):
    """--model mynet:MyNet, run in the folder that holds mynet.py, needs no PYTHONPATH; elsewhere the message
    says where it looked."""
    import sys

    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "mynet.py").write_text(MYNET)
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    torch.save({f"body.{key}": value for key, value in layers.state_dict().items()}, tmp_path / "work" / "state.pt")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])  # as the installed entry point runs
    monkeypatch.delitem(sys.modules, "mynet", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["map", "work/state.pt", "--model", "mynet:MyNet", "--chip", "pcm", "-o", "chip.h5"]) == 2
    err = capsys.readouterr().err
    assert f"--model mynet:MyNet: cannot import model class 'mynet:MyNet': No module named 'mynet' (looked in {tmp_path} and" in err
    monkeypatch.chdir(tmp_path / "work")
    try:
        assert main(["map", "state.pt", "--model", "mynet:MyNet", "--chip", "pcm", "-o", "chip.h5"]) == 0
        assert main(["eval", "chip.h5", "--model", "mynet:MyNet"]) == 0
        assert "chip.h5: digits test accuracy" in capsys.readouterr().out
    finally:
        sys.modules.pop("mynet", None)
    assert str(tmp_path / "work") not in sys.path  # the folder is searched while importing, not left on the path
