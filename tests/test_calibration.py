import numpy as np
import pytest
import torch

from xbarsim import ChipConfig, TileArray, load_chip, map_model
from xbarsim.calibration.chipstate import accuracy_from, read_counters
from xbarsim.calibration.denoise import block_for, denoise, layer_sensitivity, only_noisy, train_blocks
from xbarsim.calibration.drift import compensation_gains, set_drift_compensation
from xbarsim.calibration.ranges import RangeRecorder, calibrate_ranges, clipping_bound, switch_to_calibrated
from xbarsim.cli import main
from xbarsim.models.data import hold_out
from xbarsim.models.training import accuracy


def _calibrated(bits: int) -> ChipConfig:
    return ChipConfig.preset("pcm").with_values({
        "tile.dac": {"bits": 8, "range": "calibrated", "bound": 1.0},
        "tile.adc": {"bits": bits, "range": "calibrated", "bound": 10.0}})  # fmt: skip


@pytest.mark.parametrize("method, q", [("percentile", 99.0), ("percentile", 90.0), ("absmax", 100.0)])
def test_calibrated_ranges_hold_the_chosen_percentile(lenet, digits, method, q):
    chip = map_model(lenet, _calibrated(8), seed=1)
    x = digits.x_train[:300]
    calibrate_ranges(chip, x, method, q)
    first = chip.chip.layers["classifier.1"].matrices()[0].tiles
    for stage in ("dac", "adc"):  # look again, independently, at what the converters see now
        recorder = RangeRecorder(stage)
        first.recorder = recorder
        with torch.no_grad():
            chip(x)
        first.recorder = None
        bounds = first.dac_bounds if stage == "dac" else first.adc_bounds.ravel()
        keys = sorted(recorder.values)
        for key, bound in zip(keys, bounds):
            fraction = np.mean(recorder.magnitudes(key) <= bound * (1 + 1e-6))
            assert fraction == pytest.approx(q / 100, abs=0.01 if stage == "dac" else 0.03), (stage, key)


def test_mse_clipping_finds_the_known_optimum_for_gaussian_data():
    values = np.abs(np.random.default_rng(0).standard_normal(100_000))
    bound = clipping_bound(values, "mse", 0, levels=7)  # 3-bit signed: optimum near 2.5 sigma

    def mse(c):
        return np.mean((values - np.round(np.minimum(values, c) * 7 / c) * c / 7) ** 2)

    assert 2.2 < bound < 2.8
    assert mse(bound) < 0.5 * mse(values.max())
    assert all(mse(bound) <= mse(c) * 1.01 for c in np.linspace(1.0, 4.5, 36))
    assert clipping_bound(values, "mse", 0, levels=0) == values.max()  # no quantizer: do not clip


def test_six_bit_adcs_need_calibration(lenet, digits):
    max_range = ChipConfig.preset("pcm").with_values({"tile.adc": {"bits": 6, "range": "fixed", "bound": 512.0}})
    uncalibrated = map_model(lenet, max_range, seed=2)
    calibrated = map_model(lenet, _calibrated(6), seed=2)
    calibrate_ranges(calibrated, digits.x_train[:400])
    acc_max = accuracy(uncalibrated, digits.x_test, digits.y_test)
    acc_cal = accuracy(calibrated, digits.x_test, digits.y_test)
    assert acc_cal > acc_max + 0.3 and acc_cal > 0.85


def test_uncalibrated_chips_are_refused(lenet, digits):
    with pytest.raises(ValueError, match="no calibrated converter"):
        calibrate_ranges(map_model(lenet, ChipConfig.preset("pcm")), digits.x_train[:10])
    with pytest.raises(ValueError, match="calibration method"):
        calibrate_ranges(map_model(lenet, _calibrated(8)), digits.x_train[:10], method="magic")


@pytest.mark.parametrize("mode", ["global", "column"])
def test_drift_compensation_restores_the_mean_output(mode):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((64, 200)).astype(np.float32)
    x = rng.uniform(-1, 1, (2000, 200)).astype(np.float32)
    base = {"device.drift": {"kind": "pcm"}, "device.read_noise": {"kind": "pcm"}, "drift_compensation": mode}
    cfg = ChipConfig.preset("ideal").with_values(base)
    fresh = np.abs(TileArray.from_weights(w, cfg, seed=4).mvm(x)).mean()
    aged = TileArray.from_weights(w, cfg, seed=4)
    aged.drift(365 * 86400.0)
    uncompensated = TileArray.from_weights(w, cfg.with_values({"drift_compensation": "none"}), seed=4)
    uncompensated.drift(365 * 86400.0)
    assert abs(np.abs(aged.mvm(x)).mean() / fresh - 1) < 0.01
    assert np.abs(uncompensated.mvm(x)).mean() / fresh < 0.7  # what it corrects: ~-45% after a year


def test_compensation_can_be_switched_and_survives_a_chip_file(lenet, digits, tmp_path):
    chip = map_model(lenet, ChipConfig.preset("pcm"), seed=5)
    chip.drift(86400.0)
    assert all(g > 1.05 for g in compensation_gains(chip).values())
    set_drift_compensation(chip, "none")
    assert all(g == 1.0 for g in compensation_gains(chip).values()) and chip.chip.t_s == 86400.0
    set_drift_compensation(chip, "column")
    chip.save(tmp_path / "c.h5")
    loaded = load_chip(tmp_path / "c.h5")
    assert loaded.chip.cfg.drift_compensation == "column"
    with torch.no_grad():
        assert torch.equal(loaded(digits.x_test[:20]), chip(digits.x_test[:20]))


def test_only_noisy_layers_and_sensitivity(lenet, digits):
    chip = map_model(lenet, ChipConfig.preset("pcm").with_values({"device.write_noise.scale": 3.0}), seed=6)
    x, y = digits.x_test, digits.y_test
    with only_noisy(chip, []):
        assert accuracy(chip, x, y) == accuracy(lenet, x, y)  # every layer exact: the float network
    drops = layer_sensitivity(chip, x, y)
    assert list(drops) == sorted(drops, key=lambda n: -drops[n]) and set(drops) == set(chip.chip.layers)


def test_denoising_blocks_train_only_their_own_parameters(lenet, digits):
    chip = map_model(lenet, ChipConfig.preset("pcm").with_values({"device.write_noise.scale": 3.0}), seed=7)
    before = {k: v.clone() for k, v in chip.network.state_dict().items()}
    conductances = [m.tiles.g_now.copy() for m in chip.chip.matrices()]
    chip.attach_block("classifier.3", block_for(chip, "classifier.3"))
    block_before = {k: v.clone() for k, v in chip.blocks.state_dict().items()}
    train_blocks(chip, digits, epochs=2, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in chip.network.state_dict().items())
    assert all(np.array_equal(a, m.tiles.g_now) for a, m in zip(conductances, chip.chip.matrices()))
    assert any(not torch.equal(v, block_before[k]) for k, v in chip.blocks.state_dict().items())
    assert all(p.requires_grad for p in chip.network.parameters())  # unfrozen again


def test_denoise_search_improves_a_noisy_chip_and_saves_its_blocks(lenet, digits, tmp_path):
    chip = map_model(lenet, ChipConfig.preset("pcm").with_values({"device.write_noise.scale": 4.0}), seed=8)
    counters = read_counters(chip)
    result = denoise(chip, digits, target=0.99, max_blocks=2, epochs=3, progress=False)
    assert 1 <= len(result.steps) <= 2 and result.final_accuracy > result.baseline_accuracy
    assert 0 < result.overhead_percent < 50
    assert read_counters(chip) == counters  # measuring and training left the read state alone
    # the acceptance rule: kept exactly when the validation accuracy rose above the best so far
    best = result.validation_before
    for trial in result.trials:
        assert trial.kept == (trial.validation_accuracy > best)
        best = max(best, trial.validation_accuracy)
    assert {chip.block_layers[k] for k in chip.blocks} == {name for name, _ in result.steps}
    # independently: the model as left scores what the search reported (a rejected trial would
    # otherwise have left its training in the attached blocks)
    validation = hold_out(digits, 0.2, 0)
    assert accuracy_from(chip, counters, validation.x_test, validation.y_test) == result.validation_after
    assert accuracy_from(chip, counters, digits.x_test, digits.y_test) == result.final_accuracy
    chip.save(tmp_path / "d.h5")
    loaded = load_chip(tmp_path / "d.h5")
    assert set(loaded.blocks) == set(chip.blocks)
    with torch.no_grad():
        assert torch.equal(loaded(digits.x_test[:30]), chip(digits.x_test[:30]))


def test_denoise_is_seeded(lenet, digits):
    cfg = ChipConfig.preset("pcm").with_values({"device.write_noise.scale": 4.0})
    runs = [denoise(map_model(lenet, cfg, seed=9), digits, 0.99, max_blocks=1, epochs=1, progress=False) for _ in range(2)]
    assert runs[0].trials == runs[1].trials and runs[0].final_accuracy == runs[1].final_accuracy


def test_hold_out_is_a_seeded_partition_of_the_train_split(digits):
    split = hold_out(digits, 0.25, seed=3)
    assert len(split.y_test) == round(0.25 * len(digits.y_train)) and len(split.y_train) + len(split.y_test) == len(digits.y_train)
    rows = {tuple(r.ravel().tolist()) for r in torch.cat([split.x_train, split.x_test])}
    assert len(rows) == len({tuple(r.ravel().tolist()) for r in digits.x_train})  # nothing lost, nothing doubled
    assert torch.equal(hold_out(digits, 0.25, seed=3).x_test, split.x_test)
    assert not torch.equal(hold_out(digits, 0.25, seed=4).x_test, split.x_test)
    with pytest.raises(ValueError, match="validation fraction"):
        hold_out(digits, 1.0, 0)


def _eval_line(path, capsys) -> str:
    assert main(["eval", str(path)]) == 0
    return capsys.readouterr().out.strip()


def _accuracies(text: str, label: str) -> tuple[float, float]:
    line = next(line for line in text.splitlines() if line.startswith(label))
    before, after = (float(part.split("%")[0].split()[-1]) for part in line.split("->"))
    return before, after


@pytest.fixture(scope="module")
def chip_files(lenet, tmp_path_factory):
    """A LeNet-5 mapped on the pcm preset and on pcm with 4x programming noise; the tests below
    never change these two files (the checks that they stay unchanged are part of the tests)."""
    from xbarsim.models.checkpoint import save_checkpoint

    tmp_path = tmp_path_factory.mktemp("chips")
    save_checkpoint(lenet, tmp_path / "l.pt")
    (tmp_path / "noisy.yaml").write_text("preset: pcm\ndevice:\n  write_noise: {scale: 4.0}\n")
    assert main(["map", str(tmp_path / "l.pt"), "--chip", "pcm", "-o", str(tmp_path / "pcm.h5")]) == 0
    assert main(["map", str(tmp_path / "l.pt"), "--chip", str(tmp_path / "noisy.yaml"), "-o", str(tmp_path / "noisy.h5")]) == 0
    return tmp_path


def test_calibrate_says_when_there_is_nothing_to_do(chip_files, capsys):
    path = chip_files / "pcm.h5"
    before = path.read_bytes()
    capsys.readouterr()
    assert main(["calibrate", str(path), "--in-place"]) == 0
    out = capsys.readouterr().out
    assert "nothing to calibrate" in out and "--ranges percentile" in out and "left unchanged" in out
    assert path.read_bytes() == before


def test_calibrate_ranges_switches_a_preset_chip_and_reports_every_bound(chip_files, digits, capsys):
    path, calibrated = chip_files / "pcm.h5", chip_files / "calibrated.h5"
    eval_before = _eval_line(path, capsys)
    assert main(["calibrate", str(path), "--ranges", "mse", "--samples", "200", "-o", str(calibrated)]) == 0
    out = capsys.readouterr().out
    assert "ADC ranges switched from fixed to calibrated" in out
    chip = load_chip(calibrated)
    assert chip.chip.cfg.tile.adc.range == "calibrated" and chip.chip.cfg.tile.dac.range == "dynamic"
    # every matrix's new ADC bound is printed, and it is what an independent calibration on the same inputs
    # (200 of the train split less its 20% held out for validation) finds, with the matrices the validation
    # check put back (printed) left at the fixed bound
    reverted = _reverted(out)
    fit = hold_out(digits, 0.2, 0).x_train
    reference = load_chip(path)
    switch_to_calibrated(reference)
    calibrate_ranges(reference, fit[torch.randperm(len(fit), generator=torch.Generator().manual_seed(0))[:200]], "mse",
                     keep=lambda matrix: matrix.name not in reverted)  # fmt: skip
    for mine, theirs in zip(chip.chip.matrices(), reference.chip.matrices()):
        assert np.array_equal(mine.tiles.adc_bounds, theirs.tiles.adc_bounds)
        if mine.name not in reverted:
            assert f"{mine.name}" in out and f"-> {float(mine.tiles.adc_bounds.max()):.4g} (calibrated)" in out
    assert len(reverted) < len(list(chip.chip.matrices()))
    # the accuracy before is what eval said before; the accuracy after is what eval says now
    before, after = _accuracies(out, "digits test accuracy")
    assert f"{before:.2f}%" in eval_before
    assert f"{after:.2f}%" in _eval_line(calibrated, capsys)


def test_denoise_with_the_target_met_leaves_eval_unchanged(chip_files, capsys):
    path = chip_files / "pcm.h5"
    eval_before = _eval_line(path, capsys)
    assert main(["denoise", str(path), "--target", "0.5", "--epochs", "1", "-o", str(chip_files / "same.h5")]) == 0
    out = capsys.readouterr().out
    assert "target already met" in out and "0 block(s) kept" in out
    assert _eval_line(chip_files / "same.h5", capsys).split(":", 1)[1] == eval_before.split(":", 1)[1]
    assert main(["denoise", str(path), "--target", "0.5", "--epochs", "1", "--in-place"]) == 0  # not even rewritten
    assert "left unchanged" in capsys.readouterr().out
    assert _eval_line(path, capsys) == eval_before


def test_denoise_with_a_high_target_never_saves_a_worse_chip(chip_files, capsys):
    path, output = chip_files / "noisy.h5", chip_files / "denoised.h5"
    eval_before = _eval_line(path, capsys)
    code = main(["denoise", str(path), "--target", "0.999", "--max-blocks", "2", "--epochs", "2", "-o", str(output)])
    captured = capsys.readouterr()
    before, after = _accuracies(captured.out, "digits test accuracy")
    assert f"{before:.2f}%" in eval_before
    if code == 0:
        assert after >= before and f"{after:.2f}%" in _eval_line(output, capsys)
        assert after > before  # a 4x-noisy chip: the blocks kept on validation help on test too
    else:
        assert code == 1 and "NOT SAVED" in captured.err and not output.exists()


def test_calibrate_and_denoise_commands(lenet, tmp_path, capsys):
    from xbarsim.models.checkpoint import save_checkpoint

    save_checkpoint(lenet, tmp_path / "l.pt")
    config = tmp_path / "chip.yaml"
    config.write_text("preset: pcm\ntile:\n  adc: {bits: 4, range: calibrated, bound: 10}\n")
    assert main(["map", str(tmp_path / "l.pt"), "--chip", str(config), "-o", str(tmp_path / "c.h5")]) == 0
    assert main(["calibrate", str(tmp_path / "c.h5"), "--samples", "200", "--compensation", "column", "--in-place"]) == 0
    out = capsys.readouterr().out
    assert "ADC" in out and "drift compensation: global -> column" in out
    assert main(["denoise", str(tmp_path / "c.h5"), "--target", "0.999", "--max-blocks", "1", "--epochs", "1", "--in-place"]) in (0, 1)
    assert "block parameters" in capsys.readouterr().out
    assert load_chip(tmp_path / "c.h5").chip.cfg.drift_compensation == "column"


def _validation_line(text: str) -> tuple[float, float]:
    return _accuracies(text, "validation accuracy")


def _reverted(text: str) -> list[str]:
    """The matrices ``calibrate`` printed as put back to their old bounds."""
    marker = "kept as they were (their new bounds lowered the validation accuracy): "
    return text.split(marker)[1].splitlines()[0].split(", ") if marker in text else []


def test_calibrate_keeps_only_bounds_that_do_not_lower_the_validation_accuracy(chip_files, digits, capsys):
    """Clipping every ADC at the median of its outputs (--q 50) ruins a matrix: each such bound is
    judged on the held-out part of the train split and put back when it lowers that accuracy, and the
    validation accuracies printed are what the saved chip scores on that split."""
    path, output = chip_files / "pcm.h5", chip_files / "q50.h5"
    assert main(["calibrate", str(path), "--ranges", "percentile", "--q", "50", "-o", str(output)]) in (0, 1)
    out = capsys.readouterr().out
    validation = hold_out(digits, 0.2, 0)
    before, after = _validation_line(out)
    reverted = _reverted(out)
    original = load_chip(path)
    assert f"{100 * accuracy_from(original, read_counters(original), validation.x_test, validation.y_test):.2f}" == f"{before:.2f}"
    assert after >= before and reverted
    if output.exists():
        chip = load_chip(output)
        assert f"{100 * accuracy_from(chip, read_counters(chip), validation.x_test, validation.y_test):.2f}" == f"{after:.2f}"
        for matrix in chip.chip.matrices():  # a matrix put back keeps the fixed bound 10
            assert (matrix.name in reverted) == bool(np.all(matrix.tiles.adc_bounds == 10.0)), matrix.name


def test_calibrate_refuses_to_save_a_chip_whose_test_accuracy_falls(chip_files, capsys):
    """With one validation sample (--validation 0.001) every 90th-percentile ADC bound passes the
    validation check, and the test accuracy falls: nothing is written, NOT SAVED, exit 1 (the test
    split only vetoes; it never chooses what is kept)."""
    path, output = chip_files / "pcm.h5", chip_files / "worse.h5"
    original = path.read_bytes()
    eval_before = _eval_line(path, capsys)
    argv = ["calibrate", str(path), "--ranges", "percentile", "--q", "90", "--validation", "0.001"]
    assert main([*argv, "-o", str(output)]) == 1
    captured = capsys.readouterr()
    before, after = _accuracies(captured.out, "digits test accuracy")
    assert after < before and f"{before:.2f}%" in eval_before and "1 other train samples held out" in captured.out
    assert "xbarsim calibrate: NOT SAVED" in captured.err and not output.exists()
    assert main([*argv, "--in-place"]) == 1 and path.read_bytes() == original  # in place: the input stays as it was
    assert "NOT SAVED" in capsys.readouterr().err


def test_denoise_target_defaults_to_the_float_network_on_validation_less_two_points(chip_files, lenet, digits, capsys):
    """Without --target the stopping target is the float network's accuracy on the validation part of
    the train split less 2 points, never a test-set number."""
    assert main(["denoise", str(chip_files / "noisy.h5"), "--epochs", "1", "--max-blocks", "1", "-o", str(chip_files / "dflt.h5")]) in (0, 1)
    out = capsys.readouterr().out
    validation = hold_out(digits, 0.2, 0)
    exact = accuracy(lenet, validation.x_test, validation.y_test)  # the torch network itself
    assert f"(target {100 * (exact - 0.02):.2f}%: the validation accuracy with every layer exact, {100 * exact:.2f}%, less 2 points)" in out
