"""The example sweep specs ship inside the package and run from any folder."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from xbarsim import examples
from xbarsim.cli import build_parser, main
from xbarsim.config import PRESETS
from xbarsim.sweeps.spec import SweepSpec

ROOT = Path(__file__).resolve().parents[1]


def test_every_example_is_a_valid_spec_that_names_no_file():
    assert examples.names() == ["drift_compensation", "midpoint", "read_noise_adc"]
    for name in examples.names():
        spec = SweepSpec.from_file(examples.path(name))
        # nothing relative to a folder: a zoo model, a built-in data set, a preset chip
        assert spec.model.checkpoint is None and spec.model.zoo
        assert ":" not in spec.data
        assert isinstance(spec.chip, dict) or spec.chip in PRESETS
        assert examples.summary(name)


def test_unknown_examples_are_named(capsys):
    assert main(["sweep", "--example", "nope", "-o", "x.h5"]) == 2
    assert "no example named 'nope'; choose from drift_compensation" in capsys.readouterr().err
    assert main(["sweep", "-o", "x.h5"]) == 2
    assert "give a sweep spec file or --example NAME" in capsys.readouterr().err


def test_sweep_example_finds_the_shipped_file_from_another_folder(tmp_path, monkeypatch):
    from xbarsim.cli import _sweep_spec_file

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["sweep", "--example", "read_noise_adc.yaml", "-o", "s.h5"])
    found = Path(_sweep_spec_file(args))
    assert found.is_file() and found.parent == Path(examples.__file__).parent
    assert SweepSpec.from_file(found).name == "read-noise-x-adc"


def test_examples_command_lists_and_copies(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["examples"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in examples.names())
    assert main(["examples", "specs"]) == 0
    copied = sorted(p.name for p in (tmp_path / "specs").iterdir())
    assert copied == [n + ".yaml" for n in examples.names()]
    assert SweepSpec.from_file(tmp_path / "specs" / "midpoint.yaml") == SweepSpec.from_file(examples.path("midpoint"))
    (tmp_path / "specs" / "midpoint.yaml").write_text("edited")
    assert main(["examples", "specs"]) == 2  # never overwrites an edited copy silently
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "specs" / "midpoint.yaml").read_text() == "edited"
    assert main(["examples", "specs", "--force"]) == 0
    assert (tmp_path / "specs" / "midpoint.yaml").read_text() == examples.path("midpoint").read_text()


def test_a_built_wheel_carries_the_examples_and_finds_them_from_another_folder(tmp_path):
    """A non-editable install: build a wheel from a copy of the project, unpack it, look the
    examples up from an unrelated folder with only the unpacked package on the path."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "xbarsim", source / "xbarsim", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True)  # fmt: skip
    if build.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {build.stderr.strip()[-300:]}")
    wheel = next((tmp_path / "dist").glob("xbarsim-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "import xbarsim.examples as e; print(e.__file__); print(*e.names()); print(e.path('midpoint').is_file())"
    run = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert run.returncode == 0, run.stderr
    where, found, readable = run.stdout.split("\n")[:3]
    assert where.startswith(str(tmp_path / "site"))
    assert found.split() == examples.names() and readable == "True"
