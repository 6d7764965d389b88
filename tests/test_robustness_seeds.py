"""`xbarsim robustness --train-seeds N`: N networks trained by the `train` recipe, each measured as a
checkpoint of it would be, and the mean ± standard error over them."""

import re

import numpy as np
import pytest

from xbarsim.cli import main

RECIPE = ["--model", "mlp", "--epochs", "3", "--noisy", "0.1"]
CURVE = ["--sigmas", "logspace(-2, 2, 9)", "--repeats", "3", "--seed", "4"]


def _values(text: str, label: str) -> list[str]:
    """The numbers (or 'none') after ``label: `` on each line that starts with it."""
    return [line.split(": ", 1)[1].split(" ")[0] for line in text.splitlines() if line.startswith(label)]


def test_each_seed_is_what_train_then_robustness_gives_and_the_summary_is_their_mean(tmp_path, capsys):
    plot = str(tmp_path / "r.png")
    assert main(["robustness", *RECIPE, *CURVE, "--train-seeds", "2", "--plot", plot]) == 0
    out = capsys.readouterr().out
    assert "training 2 mlp network(s) on digits, seeds 4..5" in out
    midpoints, levels = _values(out, "midpoint sigma (activation)"), _values(out, "sigma at 5 points below")
    assert len(midpoints) == len(levels) == 2
    for index, seed in enumerate((4, 5)):  # independently: the same recipe through `train`, then one checkpoint
        checkpoint = tmp_path / f"s{seed}.pt"
        assert main(["train", *RECIPE, "--seed", str(seed), "-o", str(checkpoint)]) == 0
        assert main(["robustness", str(checkpoint), *CURVE, "--plot", plot]) == 0
        alone = capsys.readouterr().out
        assert _values(alone, "midpoint sigma (activation)") == [midpoints[index]]
        assert _values(alone, "sigma at 5 points below") == [levels[index]]
    found = [float(m) for m in midpoints if m != "none"]
    assert len(found) == 2, out  # the curve passes through a midpoint for both networks
    summary = next(line for line in out.splitlines() if line.strip().startswith("midpoint sigma:"))
    mean, error = re.search(r"midpoint sigma: ([\d.e+-]+) ± ([\d.e+-]+)", summary).groups()
    assert float(mean) == pytest.approx(np.mean(found), rel=1e-3)
    assert float(error) == pytest.approx(np.std(found, ddof=1) / np.sqrt(2), rel=0.05)
    assert f"per seed: {midpoints[0]}, {midpoints[1]}" in summary


@pytest.mark.parametrize("argv, message", [
    (["robustness", "--train-seeds", "2"], "--train-seeds trains its own networks: give --model"),
    (["robustness", "{tmp}/x.pt", "--model", "mlp", "--train-seeds", "2"], "not a CHECKPOINT"),
    (["robustness", "--model", "mlp"], "give a CHECKPOINT, or --train-seeds N"),
])  # fmt: skip
def test_train_seeds_needs_a_model_and_no_checkpoint(argv, message, tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"")  # exists: the refusal comes before it is read
    assert main([*(arg.format(tmp=tmp_path) for arg in argv), "--plot", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_train_seeds_is_a_count_of_at_least_one(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["robustness", "--model", "mlp", "--train-seeds", "0"])
    assert caught.value.code == 2 and "argument --train-seeds: must be an integer from 1 to 1000" in capsys.readouterr().err
