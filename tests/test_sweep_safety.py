"""A sweep store that bad luck and bad input cannot break: torn journal lines, sweeps that fail to start,
oversized specs, permissions, and the axis order that decides which row is which point."""

import json
import os
import stat
import tracemalloc

import h5py
import pytest
import yaml

from xbarsim.cli import main
from xbarsim.errors import XbarsimError
from xbarsim.models import data, zoo
from xbarsim.models.checkpoint import save_checkpoint
from xbarsim.models.training import TrainConfig, train
from xbarsim.sweeps.runner import run_sweep
from xbarsim.sweeps.spec import MAX_AXIS_VALUES, SweepSpec
from xbarsim.sweeps.store import ResultRow, StoreError, SweepStore, read_results


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("safety") / "tiny.pt"
    model = zoo.build("mlp", hidden=(16,))
    train(model, data.digits(), TrainConfig(epochs=2), progress=False)
    save_checkpoint(model, path)
    return str(path)


def _spec(checkpoint, **changes) -> dict:
    spec = {"name": "safety", "model": {"checkpoint": checkpoint}, "data": "digits", "test_samples": 40, "chip": "ideal",
            "axes": {"activation_noise": [0.0, 0.5], "drift.t": [0, 60]}, "repeats": 2}  # fmt: skip
    spec.update(changes)
    return spec


def _write(path, spec: dict):
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _row(point: int, repeat: int, accuracy: float) -> ResultRow:
    return ResultRow(point, repeat, repeat, 0.01, "ok", {"accuracy": accuracy})


def test_a_torn_last_journal_line_is_ignored_then_cut_off(checkpoint, tmp_path):
    spec = SweepSpec.model_validate(_spec(checkpoint))
    with SweepStore(tmp_path / "s.h5", spec) as store:  # closed without finish(): as if killed
        store.add(_row(0, 0, 0.5))
        store.add(_row(1, 1, 0.25))
    journal = tmp_path / "s.h5.journal"
    with open(journal, "ab") as f:
        f.write(b'{"point_id":2,"repeat":0,"seed":0,"wall_s":0.01,"status":"ok","metr')  # a kill mid-write
    live = read_results(tmp_path / "s.h5")
    assert live.live and live.columns["point_id"].tolist() == [0, 1]
    with SweepStore(tmp_path / "s.h5", spec) as store:
        assert store.done() == {(0, 0), (1, 1)}
        store.add(_row(2, 0, 0.75))
    lines = journal.read_text().splitlines()
    assert len(lines) == 4 and all(isinstance(json.loads(line), dict) for line in lines)  # the torn tail is gone
    assert read_results(tmp_path / "s.h5").columns["accuracy"].tolist() == [0.5, 0.25, 0.75]


@pytest.mark.parametrize("line, message", [
    (b"not json\n", "line 3: not a journal record"),
    (b'{"point_id":99,"repeat":0,"seed":0,"wall_s":0.1,"status":"ok","metrics":{"accuracy":0.5},"error":""}\n',
     "line 3: point 99, repeat 0 is not in this sweep"),
    (b'{"point_id":1,"repeat":1,"seed":7,"wall_s":0.1,"status":"ok","metrics":{"accuracy":0.5},"error":""}\n',
     "line 3: seed 7 is not the seed of repeat 1"),
    (b'{"point_id":1,"repeat":1,"seed":1,"wall_s":0.1,"status":"ok","metrics":{"accuracy":"1e9"},"error":""}\n',
     "line 3: metrics"),
    (b'{"point_id":1,"repeat":1,"seed":1,"wall_s":0.1,"status":"ok","metrics":{"accuracy":0.5},"run":"os.system"}\n',
     "line 3: not a result row"),
])  # fmt: skip
def test_a_damaged_whole_journal_line_names_the_file_and_line(checkpoint, tmp_path, line, message):
    spec = SweepSpec.model_validate(_spec(checkpoint))
    with SweepStore(tmp_path / "s.h5", spec) as store:
        store.add(_row(0, 0, 0.5))
    with open(tmp_path / "s.h5.journal", "ab") as f:
        f.write(line)
    for read in (lambda: read_results(tmp_path / "s.h5"), lambda: SweepStore(tmp_path / "s.h5", spec)):
        with pytest.raises(StoreError, match=f"s.h5.journal {message}"):
            read()
    assert not (tmp_path / "s.h5.lock").exists()  # a refused open lets go of the lock


@pytest.mark.parametrize("break_spec, executor, message", [
    (lambda spec, tmp: spec.update(data="nope"), "serial", "data: unknown data set 'nope'"),
    (lambda spec, tmp: spec.update(data=f"mnist:{tmp}/no-such-folder"), "serial", "data: MNIST"),
    (lambda spec, tmp: spec["model"].update(checkpoint=f"{tmp}/missing.pt"), "serial", "missing.pt: no such file"),
    (lambda spec, tmp: spec.update(model={"zoo": "mlp", "kwargs": {"hidden_units": 3}}), "serial", "model: "),
    (lambda spec, tmp: spec.update(model={"zoo": "lenet5", "kwargs": {"image_size": 28}}), "serial", "does not run on data 'digits'"),
    (lambda spec, tmp: None, "threads", "unknown executor 'threads'"),
])  # fmt: skip
def test_a_sweep_that_fails_to_start_leaves_nothing_and_a_fixed_rerun_works(checkpoint, tmp_path, capsys, break_spec,
                                                                           executor, message):  # fmt: skip
    spec = _spec(checkpoint)
    break_spec(spec, tmp_path)
    output = tmp_path / "out" / "s.h5"
    assert main(["sweep", str(_write(tmp_path / "bad.yaml", spec)), "-o", str(output), "--executor", executor]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.splitlines()) == 1 and "Traceback" not in error
    assert not (tmp_path / "out").exists()  # not even the folder
    fixed = _write(tmp_path / "good.yaml", _spec(checkpoint))
    assert main(["sweep", str(fixed), "-o", str(output), "--executor", "serial"]) == 0
    assert read_results(output).finished and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s.h5"]


def test_a_spec_is_data_it_names_no_code(checkpoint, tmp_path, capsys):
    spec = _spec(checkpoint, model={"zoo": "subprocess:run", "kwargs": {"args": ["touch", str(tmp_path / "ran")]}})
    assert main(["sweep", str(_write(tmp_path / "evil.yaml", spec)), "-o", str(tmp_path / "s.h5")]) == 2
    assert "model.zoo: unknown zoo model 'subprocess:run'; the zoo has chargpt, chargru, charlstm, gru, lenet5" in capsys.readouterr().err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "s.h5").exists()


def test_too_many_rows_are_refused_before_anything_runs(checkpoint, tmp_path, capsys):
    spec = _spec(checkpoint, axes={"activation_noise": "linspace(0, 1, 400)", "drift.t": "linspace(0, 60, 500)"}, repeats=3)
    with pytest.raises(XbarsimError, match=r"600,000 rows \(200,000 points x 3 repeats\), over the limit of 100,000: .*--max-points 600000"):
        run_sweep(SweepSpec.model_validate(spec), tmp_path / "s.h5", "serial", progress=False)
    small = _write(tmp_path / "small.yaml", _spec(checkpoint))  # 8 rows
    assert main(["sweep", str(small), "-o", str(tmp_path / "s.h5"), "--max-points", "7"]) == 2
    assert "8 rows (4 points x 2 repeats), over the limit of 7" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [small]
    assert main(["sweep", str(small), "-o", str(tmp_path / "s.h5"), "--max-points", "8", "--executor", "serial"]) == 0


def test_a_huge_axis_is_refused_at_parse_time_without_allocating_it(tmp_path, capsys):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"axis activation_noise: 'linspace\(0, 1, 1e8\)' asks for 1e\+08 values"):
            SweepSpec.model_validate({"model": {"zoo": "mlp"}, "axes": {"activation_noise": "linspace(0, 1, 1e8)"}})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # the 800 MB array was never made
    for values in ("logspace(0, 1, 2.5)", "linspace(0, 1, 0)", "logspace(0, 400, 3)", "linspace(0, inf, 3)", "linspace(0, 1, -5)"):
        with pytest.raises(ValueError, match="axis drift.t: "):
            SweepSpec.model_validate({"model": {"zoo": "mlp"}, "axes": {"drift.t": values}})
    with pytest.raises(ValueError, match=f"axis drift.t: {MAX_AXIS_VALUES + 1:,} values, more than {MAX_AXIS_VALUES:,} per axis"):
        SweepSpec.model_validate({"model": {"zoo": "mlp"}, "axes": {"drift.t": list(range(MAX_AXIS_VALUES + 1))}})
    spec = _write(tmp_path / "huge.yaml", {"model": {"zoo": "mlp"}, "axes": {"activation_noise": "linspace(0, 1, 1e8)"}})
    assert main(["sweep", str(spec), "-o", str(tmp_path / "s.h5")]) == 2
    error = capsys.readouterr().err
    assert f"{spec}: axes: axis activation_noise: 'linspace(0, 1, 1e8)' asks for 1e+08 values" in error and len(error.splitlines()) == 1


def test_store_files_get_the_permissions_of_a_plain_file(checkpoint, tmp_path):
    old = os.umask(0o002)  # group-writable: unlike both the usual 0o022 and mkstemp's private 0600
    try:
        (tmp_path / "plain").write_text("")
        spec = SweepSpec.model_validate(_spec(checkpoint))
        with SweepStore(tmp_path / "s.h5", spec, checkpoint_s=0) as store:
            store.add(_row(0, 0, 0.5))
            lock_mode = stat.S_IMODE((tmp_path / "s.h5.lock").stat().st_mode)
        read_results(tmp_path / "s.h5").to_csv(tmp_path / "s.csv")
    finally:
        os.umask(old)
    plain = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert plain == 0o664
    assert {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("s.h5", "s.h5.journal", "s.csv")} == dict.fromkeys(
        ("s.h5", "s.h5.journal", "s.csv"), plain
    )
    assert lock_mode == plain


def test_the_axis_order_decides_the_points_and_belongs_to_the_spec(checkpoint, tmp_path):
    spec = SweepSpec.model_validate(_spec(checkpoint, axes={"drift.t": [0, 60], "activation_noise": [0.0, 0.5]}))
    swapped = SweepSpec.model_validate(_spec(checkpoint, axes={"activation_noise": [0.0, 0.5], "drift.t": [0, 60]}))
    assert spec.digest() != swapped.digest()
    run_sweep(spec, tmp_path / "s.h5", "serial", progress=False)
    results = read_results(tmp_path / "s.h5")
    assert list(results.spec.axes) == ["drift.t", "activation_noise"]
    points = spec.points()
    for column in ("drift.t", "activation_noise"):
        assert results.columns[column].tolist() == [points[p][column] for p in results.columns["point_id"]]
    with pytest.raises(StoreError, match="holds results of a different sweep spec"):
        run_sweep(swapped, tmp_path / "s.h5", "serial", progress=False)
    with h5py.File(tmp_path / "s.h5", "a") as f:  # as earlier versions wrote it: the spec with sorted axes
        f.attrs["spec_json"] = json.dumps(spec.model_dump(), sort_keys=True)
    assert list(read_results(tmp_path / "s.h5").spec.axes) == ["drift.t", "activation_noise"]  # from axes_json
    run_sweep(spec, tmp_path / "s.h5", "serial", progress=False)  # and the same spec may still resume it


def test_report_of_a_missing_store_says_so(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none.h5")]) == 2
    assert f"{tmp_path / 'none.h5'}: no such file" in capsys.readouterr().err


def test_sweeps_of_two_networks_in_one_process_do_not_share_chips(checkpoint, tmp_path):
    other = zoo.build("mlp", hidden=(24,))
    train(other, data.digits(), TrainConfig(epochs=2, seed=1), progress=False)
    save_checkpoint(other, tmp_path / "other.pt")
    first, second = (SweepSpec.model_validate(_spec(path, repeats=1)) for path in (checkpoint, str(tmp_path / "other.pt")))
    accuracies = []
    for spec, store in ((second, "b1.h5"), (first, "a.h5"), (second, "b2.h5")):  # same chip config, other network
        run_sweep(spec, tmp_path / store, "serial", progress=False)
        accuracies.append(read_results(tmp_path / store).columns["accuracy"].tolist())
    assert accuracies[0] == accuracies[2] != accuracies[1]


@pytest.mark.parametrize("option", [["--workers", "0"], ["--retries", "-1"], ["--max-points", "0"], ["--max-points", "1e9"],
                                    ["--checkpoint-every", "-5"], ["--checkpoint-every", "inf"]])  # fmt: skip
def test_sweep_options_are_checked(tmp_path, capsys, option):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "s.h5"), *option])
    assert exit_.value.code == 2 and f"argument {option[0]}: must be" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _set(name, value):
    def change(f):
        del f[name]
        f[name] = value

    return change


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.attrs.__setitem__("format", [1, 2]), "not an xbarsim sweep store"),
    (lambda f: f.attrs.__setitem__("format_version", "1"), "format version '1', expected 1"),
    (lambda f: f.attrs.__setitem__("spec_json", "{"), "its sweep spec is not valid"),
    (_set("rows/point_id", [0.0, 1.0]), "rows/point_id is missing or not a 1-D integer array"),
    (_set("rows/repeat", [0]), "rows/repeat is missing or not a 1-D integer array of one entry per row"),
    (_set("rows/status", [1, 2]), "rows/status is missing or not a 1-D text array"),
    (_set("rows/metric_accuracy", [0.5, 1e30]), "row 1: metrics {'accuracy': 1e+30} are not fractions in [0, 1]"),
    (_set("rows/point_id", [0, 0]), "row 1: (point 0, repeat 0) is stored twice"),
    (_set("rows/seed", [0, -3]), "row 1: seed -3 is not the seed of repeat 0"),
])  # fmt: skip
def test_a_hostile_or_damaged_store_is_refused_in_one_line(checkpoint, tmp_path, capsys, damage, message):
    spec = SweepSpec.model_validate(_spec(checkpoint))
    with SweepStore(tmp_path / "s.h5", spec, checkpoint_s=0) as store:
        store.add(_row(0, 0, 0.5))
        store.add(_row(1, 0, 0.25))
    (tmp_path / "s.h5.journal").unlink()
    with h5py.File(tmp_path / "s.h5", "a") as f:
        damage(f)
    assert main(["report", str(tmp_path / "s.h5")]) == 2
    error = capsys.readouterr().err
    assert f"s.h5{'' if message.startswith('row') else ': '}" in error and message in error and len(error.splitlines()) == 1
    before = (tmp_path / "s.h5").read_bytes()
    with pytest.raises(StoreError):
        run_sweep(spec, tmp_path / "s.h5", "serial", progress=False)
    assert (tmp_path / "s.h5").read_bytes() == before  # never written over


def test_a_store_cut_short_without_its_journal_is_refused_not_crashed(checkpoint, tmp_path, capsys):
    spec = SweepSpec.model_validate(_spec(checkpoint))
    with SweepStore(tmp_path / "s.h5", spec, checkpoint_s=0) as store:
        store.add(_row(0, 0, 0.5))
    (tmp_path / "s.h5.journal").unlink()
    raw = (tmp_path / "s.h5").read_bytes()
    for cut in (len(raw) // 3, len(raw) - 200):
        (tmp_path / "s.h5").write_bytes(raw[:cut])
        assert main(["report", str(tmp_path / "s.h5")]) == 2
        assert "s.h5: not a readable sweep store" in capsys.readouterr().err
