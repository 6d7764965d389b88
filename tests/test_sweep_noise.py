"""A sweep's noise axis applies the spec's kind of noise, as `xbarsim robustness` does, row by row."""

import numpy as np
import pytest
import torch
import yaml

from xbarsim.cli import main
from xbarsim.errors import XbarsimError
from xbarsim.models import data, zoo
from xbarsim.models.checkpoint import load_network, save_checkpoint
from xbarsim.models.training import TrainConfig, train
from xbarsim.sweeps.noise_kinds import parse_noise_kind
from xbarsim.sweeps.report import format_report
from xbarsim.sweeps.runner import run_sweep
from xbarsim.sweeps.spec import SweepSpec
from xbarsim.sweeps.store import read_results

SAMPLES = 150


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A trained MLP and a seeded, untrained LSTM (rows of the 8x8 digits as 8 steps), as checkpoints."""
    folder = tmp_path_factory.mktemp("sweep_noise")
    torch.manual_seed(0)
    mlp = zoo.build("mlp", hidden=(32,))
    train(mlp, data.digits(), TrainConfig(epochs=4), progress=False)
    save_checkpoint(mlp, folder / "mlp.pt")
    torch.manual_seed(0)
    save_checkpoint(zoo.build("lstm"), folder / "lstm.pt")
    return {"mlp": str(folder / "mlp.pt"), "lstm": str(folder / "lstm.pt")}


def _spec(checkpoint: str, **changes) -> dict:
    spec = {"name": "noise", "model": {"checkpoint": checkpoint}, "data": "digits", "test_samples": SAMPLES,
            "noise": "weight", "axes": {"noise_level": [0.01, 0.03, 0.1, 0.3, 1.0]}, "repeats": 2, "seed": 3}  # fmt: skip
    spec.update(changes)
    return spec


def _rows(path) -> dict[tuple[int, int], tuple[int, float]]:
    cols = read_results(path).columns
    assert set(cols["status"]) == {"ok"}
    return {(int(p), int(r)): (int(s), float(a)) for p, r, s, a in zip(cols["point_id"], cols["repeat"], cols["seed"], cols["accuracy"])}


def _truth(spec: SweepSpec) -> dict[tuple[int, int], tuple[int, float]]:
    """Every row computed directly with the noise_kinds machinery: the spec's kind at each level,
    drawn from the row's seed, on the float network, over the spec's test samples."""
    split = data.load(spec.data, seed=spec.seed)
    x, y = split.x_test[:SAMPLES], split.y_test[:SAMPLES]
    network = load_network(spec.model.checkpoint).eval()
    truth = {}
    with torch.no_grad(), parse_noise_kind(spec.noise).applied(network) as at:
        for p, point in enumerate(spec.points()):
            for r in range(spec.repeats):
                seed = spec.seed + r
                logits = at(point["noise_level"], seed)(x)
                truth[(p, r)] = (seed, int((logits.argmax(dim=1) == y).sum()) / SAMPLES)
    return truth


def test_weight_noise_sweep_gives_the_noise_kinds_rows_on_every_executor(checkpoints, tmp_path):
    spec = SweepSpec.model_validate(_spec(checkpoints["mlp"], metrics=["accuracy", "midpoint"]))
    truth = _truth(spec)
    accuracies = [a for _, a in truth.values()]
    assert max(accuracies) > 0.8 and min(accuracies) < 0.3  # the noise does bite: rows that ignored it would differ
    rows = {}
    for executor in ("serial", "processes"):
        run_sweep(spec, tmp_path / f"{executor}.h5", executor, workers=2, progress=False)
        rows[executor] = _rows(tmp_path / f"{executor}.h5")
    assert rows["serial"] == truth
    assert rows["processes"] == truth
    report = format_report(read_results(tmp_path / "serial.h5"))
    assert "midpoint noise level (weight noise (Noisy Machines), eta x each layer's weight range, on the float network; level: eta):" in report
    assert main(["report", str(tmp_path / "serial.h5"), "--plot", str(tmp_path / "w.png")]) == 0
    assert (tmp_path / "w_noise.png").is_file()


@pytest.mark.parametrize("model, kind", [("lstm", "gate:relative"), ("mlp", "bayesft")])
def test_gate_and_bayesft_sweeps_give_the_noise_kinds_rows(checkpoints, tmp_path, model, kind):
    spec = SweepSpec.model_validate(_spec(checkpoints[model], noise=kind, axes={"noise_level": [0.0, 0.5, 2.0]}))
    truth = _truth(spec)
    assert len({a for _, a in truth.values()}) > 1
    run_sweep(spec, tmp_path / "s.h5", "serial", progress=False)
    assert _rows(tmp_path / "s.h5") == truth


def test_a_kind_that_does_not_fit_the_model_is_refused_before_any_file(checkpoints, tmp_path, capsys):
    spec = SweepSpec.model_validate(_spec(checkpoints["mlp"], noise="gate"))
    with pytest.raises(XbarsimError, match="sweep 'noise': noise 'gate': gate noise does not apply: .* no LSTM, GRU or RNN layer"):
        run_sweep(spec, tmp_path / "s.h5", "serial", progress=False)
    assert list(tmp_path.iterdir()) == []
    spec_file = tmp_path.parent / f"{tmp_path.name}_gate.yaml"
    spec_file.write_text(yaml.safe_dump(_spec(checkpoints["mlp"], noise="gate")))
    assert main(["sweep", str(spec_file), "-o", str(tmp_path / "s.h5"), "--executor", "serial"]) == 2
    error = capsys.readouterr().err.strip()
    assert "noise 'gate': gate noise does not apply" in error and len(error.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("changes, message", [
    ({"noise": "shot"}, "noise 'shot': not a kind of noise; choose from activation"),
    ({"noise": "activation:x"}, "noise 'activation:x': not a kind of noise"),
    ({"noise": "chip:pcm"}, "noise 'chip:pcm': a sweep scales a chip's noise with its own axes"),
    ({"axes": {"noise_level": [0.1], "tile.adc.bits": [4]}}, "noise 'weight' acts on the trained float network, not on the chip: its sweep has one axis, noise_level"),
    ({"axes": {"drift.t": [0, 60]}}, "its sweep has one axis, noise_level"),
    ({"axes": {"activation_noise": [0.1]}}, "axis activation_noise is for noise: activation; name the axis of noise 'weight' noise_level"),
    ({"noise": "activation", "axes": {"activation_noise": [0.1], "noise_level": [0.1]}}, "give one noise axis"),
    ({"axes": {"noise_level": [-0.1]}}, "axis noise_level: values must be finite numbers >= 0"),
])  # fmt: skip
def test_bad_noise_specs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SweepSpec.model_validate(_spec("model.pt", **changes))


def test_activation_noise_keeps_its_axis_and_old_specs_keep_their_digest():
    old = {"model": {"zoo": "mlp"}, "axes": {"activation_noise": [0.1, 1.0], "drift.t": [0, 60]}, "metrics": ["accuracy"]}
    spec = SweepSpec.model_validate(old)
    assert spec.digest() == "2cf02c8f300cfa75"  # the digest of this spec before the noise field existed
    assert SweepSpec.model_validate({**old, "noise": "activation"}).digest() == spec.digest()
    assert '"noise"' not in spec.canonical_json()
    renamed = SweepSpec.model_validate({**old, "axes": {"noise_level": [0.1, 1.0], "drift.t": [0, 60]}})
    assert renamed.noise_axis == "noise_level" and renamed.points()[1] == {"noise_level": 0.1, "drift.t": 60}
    weight, bayesft = (SweepSpec.model_validate({**old, "noise": kind, "axes": {"noise_level": [0.1]}}) for kind in ("weight", "bayesft"))
    assert weight.digest() != bayesft.digest() and '"noise":"weight"' in weight.canonical_json()
    assert SweepSpec.model_validate_json(weight.canonical_json()) == weight


def test_noise_level_axis_on_the_chip_gives_the_activation_noise_rows(checkpoints, tmp_path):
    """noise_level with noise: activation is the activation_noise axis under another name."""
    chip_spec = {"chip": "ideal", "noise": "activation", "repeats": 1, "test_samples": 60}
    old = SweepSpec.model_validate(_spec(checkpoints["mlp"], axes={"activation_noise": [0.0, 0.5, 2.0]}, **chip_spec))
    new = SweepSpec.model_validate(_spec(checkpoints["mlp"], axes={"noise_level": [0.0, 0.5, 2.0]}, **chip_spec))
    run_sweep(old, tmp_path / "old.h5", "serial", progress=False)
    run_sweep(new, tmp_path / "new.h5", "serial", progress=False)
    accuracies = [read_results(tmp_path / f"{name}.h5").columns["accuracy"] for name in ("old", "new")]
    np.testing.assert_array_equal(*accuracies)
    assert accuracies[0][0] > accuracies[0][2]
