"""Checkpoints are data: a callable's name in any field of a checkpoint is never imported or called,
through every command that reads one (and the Python API). Each forged checkpoint gets one line, exit 2,
leaves no file behind, and the inputs stay byte-identical."""

from __future__ import annotations

import hashlib
import importlib
import re
from pathlib import Path

import pytest
import torch

from xbarsim.cli import main
from xbarsim.errors import XbarsimError
from xbarsim.models import zoo
from xbarsim.models.checkpoint import FORMAT, load_network, network_from_content

MARKER = "MARKER"

# callable name -> keyword arguments that would create the marker if the name were imported and called
# (eval and exec take no keywords: a loader that called them would fail, after importing; see _watch_imports)
PAYLOADS = {
    "os:system": lambda m: {"command": f"touch {m}"},
    "builtins:eval": lambda m: {"source": f"open({str(m)!r}, 'w')"},
    "builtins:exec": lambda m: {"source": f"open({str(m)!r}, 'w')"},
    "subprocess:run": lambda m: {"args": ["touch", str(m)]},
    "importlib:import_module": lambda m: {"name": "evilmod"},
}


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return zoo.build("lenet5", image_size=8).state_dict()


def _v1(**fields) -> dict:
    return {"format": FORMAT, "model": "lenet5", "kwargs": {"image_size": 8}, "state_dict": _state(), **fields}


def _v2(**fields) -> dict:
    return {"format": FORMAT, "format_version": 2, "network": {"zoo": "lenet5", "kwargs": {"image_size": 8}},
            "state_dict": _state(), **fields}  # fmt: skip


def _layer(node: dict) -> dict:
    return _v2(network={"layers": node})


# field -> the checkpoint's content with callable ``c`` (its keyword arguments ``k``) in that field
FIELDS = {
    "v1-model": lambda c, k: _v1(model=c, kwargs=k),
    "v1-model-not-a-string": lambda c, k: _v1(model=[c, k]),
    "v1-kwargs-key": lambda c, k: _v1(kwargs={"image_size": 8, c: k}),
    "v1-kwargs-value": lambda c, k: _v1(kwargs={"image_size": c}),
    "v1-kwargs-nested": lambda c, k: _v1(kwargs={"image_size": {"zoo": c, "kwargs": k}}),
    "v1-qat-scale": lambda c, k: _v1(qat={"bits": 8, "activation_scale": c}),
    "zoo": lambda c, k: _v2(network={"zoo": c, "kwargs": k}),
    "zoo-kwargs-key": lambda c, k: _v2(network={"zoo": "lenet5", "kwargs": {"image_size": 8, c: k}}),
    "zoo-kwargs-value": lambda c, k: _v2(network={"zoo": "lenet5", "kwargs": {"image_size": 8, "num_classes": c}}),
    "network-a-string": lambda c, k: _v2(network=c),
    "network-extra-key": lambda c, k: _v2(network={"zoo": "lenet5", "kwargs": {"image_size": 8}, c: k}),
    "layer-type": lambda c, k: _layer({"type": c, "args": k}),
    "layer-nested": lambda c, k: _layer({"type": "Sequential", "children": [
        ["0", {"type": "Sequential", "children": [["1", {"type": c, "args": k}]]}]]}),
    "layer-arg-key": lambda c, k: _layer({"type": "Linear", "args": {"in_features": 4, "out_features": 2, c: k}}),
    "layer-arg-value": lambda c, k: _layer({"type": "Linear", "args": {"in_features": c, "out_features": 2}}),
    "layer-child-name": lambda c, k: _layer({"type": "Sequential", "children": [[c, {"type": "ReLU"}]]}),
    "qat-key": lambda c, k: _v2(qat={"bits": 8, c: k}),
    "qat-scale": lambda c, k: _v2(qat={"bits": 8, "activation_scale": c}),
    "state-dict-key": lambda c, k: _v2(state_dict={**_state(), c: k}),
    "state-dict-value": lambda c, k: _v2(state_dict={**_state(), "features.0.weight": c}),
    "top-level-field": lambda c, k: _v2(hook={"callable": c, "kwargs": k}),
    "format-version": lambda c, k: _v2(format_version=c),
}

# command -> argv ({ckpt}: the forged checkpoint, {tmp}: the case's folder); a sweep reads it from its spec
COMMANDS = {
    "map": "map {ckpt} --chip pcm -o {tmp}/out.h5",
    "map-model-override": "map {ckpt} --model lenet5 --model-args {{\"image_size\":8}} --chip pcm -o {tmp}/out.h5",
    "robustness": "robustness {ckpt} --sigmas 0.1,0.2,0.3,0.4,0.5 --repeats 1 --plot {tmp}/r.png",
    "train-distill": "train --model lenet5 --data digits --epochs 1 --distill {ckpt} -o {tmp}/m.pt",
    "sweep": "sweep {tmp}/spec.yaml -o {tmp}/s.h5 --executor serial",
    "sweep-zoo-override": "sweep {tmp}/spec-zoo.yaml -o {tmp}/s.h5 --executor serial",
    "eval": "eval {ckpt}",
    "cost": "cost {ckpt}",
    "calibrate": "calibrate {ckpt} -o {tmp}/c.h5",
    "denoise": "denoise {ckpt} --target 0.9 -o {tmp}/d.h5",
}
# with --model the user's network replaces the described one: a forged description goes unread, but every
# other field is still checked (the state_dict, qat, the format)
_DESCRIPTION_FIELDS = {"v1-model", "v1-model-not-a-string", "v1-kwargs-key", "v1-kwargs-value", "v1-kwargs-nested", "zoo",
                       "zoo-kwargs-key", "zoo-kwargs-value", "network-a-string", "network-extra-key", "layer-type",
                       "layer-nested", "layer-arg-key", "layer-arg-value", "layer-child-name"}  # fmt: skip


def _contents(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def watch_imports(monkeypatch, tmp_path):
    """The marker also appears if anything imports a module the forged files name, even without calling it;
    and a module ``evilmod`` on the path makes it on import."""
    marker = tmp_path / MARKER
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    real = importlib.import_module
    named = {name.split(":")[0] for name in PAYLOADS} | {"evilmod"}

    def watched(name, package=None):
        if name in named:
            marker.touch()
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", watched)
    return marker


def _forge(tmp_path: Path, callable_name: str, field: str, marker: Path) -> Path:
    """The forged checkpoint, and the two sweep specs that read it."""
    ckpt = tmp_path / "evil.pt"
    torch.save(FIELDS[field](callable_name, PAYLOADS[callable_name](marker)), ckpt)
    (tmp_path / "spec.yaml").write_text(f"model: {{checkpoint: '{ckpt}'}}\naxes: {{tile.adc.bits: [6]}}\nrepeats: 1\ntest_samples: 8\n")
    (tmp_path / "spec-zoo.yaml").write_text(f"model: {{checkpoint: '{ckpt}', zoo: lenet5, kwargs: {{image_size: 8}}}}\n"
                                            f"axes: {{tile.adc.bits: [6]}}\nrepeats: 1\ntest_samples: 8\n")  # fmt: skip
    return ckpt


def _run(command: str, ckpt: Path, tmp_path: Path, capsys) -> tuple[int, list[str]]:
    argv = [token.format(ckpt=ckpt, tmp=tmp_path) for token in COMMANDS[command].split()]
    capsys.readouterr()
    status = main(argv)
    return status, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# with --model (or a spec's zoo) the checkpoint's description is not read: those pairs are the test below
_GRID = [(c, f, command) for c in PAYLOADS for f in FIELDS for command in COMMANDS
         if not (command.endswith("override") and f in _DESCRIPTION_FIELDS)]  # fmt: skip


@pytest.mark.parametrize("callable_name, field, command", _GRID, ids=["-".join(case) for case in _GRID])
def test_a_callable_named_in_a_checkpoint_never_runs(callable_name, field, command, tmp_path, capsys, watch_imports):
    marker = watch_imports
    ckpt = _forge(tmp_path, callable_name, field, marker)
    before = _contents(tmp_path)
    status, err = _run(command, ckpt, tmp_path, capsys)
    assert not marker.exists()
    assert status == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert "evil.pt" in err[0], err
    assert _contents(tmp_path) == before  # nothing written, nothing changed


@pytest.mark.parametrize("field", sorted(_DESCRIPTION_FIELDS))
def test_a_forged_description_is_not_even_read_when_the_user_names_the_model(field, tmp_path, capsys, watch_imports):
    ckpt = _forge(tmp_path, "os:system", field, watch_imports)
    status, err = _run("map-model-override", ckpt, tmp_path, capsys)
    assert status == 0 and not watch_imports.exists(), err
    assert (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("callable_name", list(PAYLOADS))
def test_the_python_api_refuses_them_too(callable_name, field, tmp_path, watch_imports):
    marker = watch_imports
    content = FIELDS[field](callable_name, PAYLOADS[callable_name](marker))
    torch.save(content, tmp_path / "evil.pt")
    with pytest.raises(XbarsimError, match=r"evil\.pt"):
        load_network(tmp_path / "evil.pt")
    with pytest.raises(XbarsimError):
        network_from_content(content)
    assert not marker.exists()


def test_a_name_with_a_colon_is_never_imported_by_the_loader(tmp_path, watch_imports):
    torch.save(_state(), tmp_path / "state.pt")
    with pytest.raises(XbarsimError, match=r"unknown zoo model 'subprocess:run'.*usercode\.build"):
        load_network(tmp_path / "state.pt", "subprocess:run", {"args": ["touch", str(watch_imports)]})
    assert not watch_imports.exists()


def test_a_version_1_checkpoint_still_loads(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("lenet5", image_size=8).eval()
    torch.save({"format": FORMAT, "model": "lenet5", "kwargs": {"image_size": 8}, "state_dict": model.state_dict()}, tmp_path / "v1.pt")
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(load_network(tmp_path / "v1.pt")(x), model(x))


def test_a_network_too_large_for_memory_is_refused_before_any_allocation(tmp_path, capsys):
    content = _v2(network={"zoo": "lenet5", "kwargs": {"image_size": 10**7}})
    torch.save(content, tmp_path / "huge.pt")
    assert main(["map", str(tmp_path / "huge.pt"), "--chip", "pcm", "-o", str(tmp_path / "out.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"xbarsim map: error: .*huge\.pt: network: the network would need [\d,.]+ GiB for its parameters "
                        r"\(the largest, classifier\.1\.weight: [\d,.]+ GiB\), more than the [\d,.]+ [GM]iB of memory available", err), err
    assert not (tmp_path / "out.h5").exists()
