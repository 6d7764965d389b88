import numpy as np
import pytest
import torch

from xbarsim import ChipConfig, TileArray, load_chip, map_model
from xbarsim.calibration.denoise import block_for, denoise, layer_sensitivity, only_noisy, train_blocks
from xbarsim.calibration.drift import compensation_gains, set_drift_compensation
from xbarsim.calibration.ranges import RangeRecorder, calibrate_ranges, clipping_bound
from xbarsim.cli import main
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig, accuracy, train


@pytest.fixture(scope="module")
def digits():
    return data.digits()


@pytest.fixture(scope="module")
def lenet(digits):
    torch.manual_seed(0)
    model = zoo.build("lenet5", image_size=8)
    train(model, digits, TrainConfig(epochs=25), progress=False)
    return model


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
    result = denoise(chip, digits, target=0.99, max_blocks=2, epochs=3, progress=False)
    assert len(result.steps) == 2 and result.final_accuracy > result.baseline_accuracy
    assert 0 < result.overhead_percent < 50
    chip.save(tmp_path / "d.h5")
    loaded = load_chip(tmp_path / "d.h5")
    assert set(loaded.blocks) == set(chip.blocks)
    with torch.no_grad():
        assert torch.equal(loaded(digits.x_test[:30]), chip(digits.x_test[:30]))


def test_calibrate_and_denoise_commands(lenet, tmp_path, capsys):
    from xbarsim.models.checkpoint import save_checkpoint

    save_checkpoint(lenet, tmp_path / "l.pt")
    config = tmp_path / "chip.yaml"
    config.write_text("preset: pcm\ntile:\n  adc: {bits: 6, range: calibrated, bound: 10}\n")
    assert main(["map", str(tmp_path / "l.pt"), "--chip", str(config), "-o", str(tmp_path / "c.h5")]) == 0
    assert main(["calibrate", str(tmp_path / "c.h5"), "--samples", "200", "--compensation", "column"]) == 0
    assert "ADC" in capsys.readouterr().out
    assert main(["denoise", str(tmp_path / "c.h5"), "--target", "0.999", "--max-blocks", "1", "--epochs", "1"]) == 0
    assert "block parameters" in capsys.readouterr().out
    assert load_chip(tmp_path / "c.h5").chip.cfg.drift_compensation == "column"
