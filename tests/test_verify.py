"""Program-and-verify (crossbar/laws/verify.py): against its NumPy reference, a hand-computed case, and the
closed forms of simple pulse models; deterministic whatever the piece size and thread count."""

import numpy as np
import pytest
from scipy.stats import norm

from xbarsim.config import ChipConfig, VerifyProgramming
from xbarsim.crossbar.laws import cells, pieces
from xbarsim.crossbar.tile import TileArray
from xbarsim.crossbar.truth import verify_reference


def loop(**fields) -> VerifyProgramming:
    return ChipConfig.from_dict({"programming": {"method": "verify", **fields}}).programming


def pairs(values) -> np.ndarray:
    """(2, 1, k) float32: G+ the values, G- at 0."""
    a = np.zeros((2, 1, len(values)), np.float32)
    a[0, 0] = values
    return a


NOISY = {
    "absolute window, read noise": loop(window_us=0.5, read_noise_us=0.2, max_pulses=10, max_iterations=5,
                                        pulse={"step_us": 0.8, "step_spread": 0.3, "step_growth": 0.1, "saturation_us": 30.0}),
    "relative window and read noise, no confirm": loop(window_pct=3.0, read_noise_pct=2.0, confirm=False, max_pulses=6, max_iterations=8,
                                                       pulse={"step_us": 0.4, "step_spread": 0.5, "reset_ratio": 1.7}),
    "capped relative window": loop(window_us=0.1, window_pct=40.0, window_max_us=1.5, read_noise_us=0.05, read_noise_pct=3.0,
                                   max_pulses=8, max_iterations=6, pulse={"step_us": 3.0, "step_spread": 0.7}),
    "pulses sized by the read error": loop(window_us=0.05, window_pct=20.0, read_noise_pct=4.0, max_pulses=5, max_iterations=4,
                                           pulse={"step_us": 0.1, "step_pct": 90.0, "step_spread": 1.2, "reset_ratio": 0.8}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(NOISY))
def test_the_kernel_equals_the_numpy_reference_bit_for_bit(case):
    rng = np.random.default_rng(1)
    targets = rng.uniform(0, 25, (2, 17, 23)).astype(np.float32)
    starts = rng.uniform(0, 25, (2, 17, 23)).astype(np.float32)
    got = cells.verified(targets, starts, NOISY[case], seed=5, index=1)
    want = verify_reference.verify(targets, starts, NOISY[case], seed=5, index=1)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    _, pulses, reads, done = got
    assert 0.05 < done.mean() < 0.98  # both outcomes occur
    confirm = int(NOISY[case].confirm)
    assert np.all(reads >= 1 + pulses + confirm * done)  # the first read, one after each pulse, the confirmation
    if confirm:  # a confirmation that failed cost a read that no pulse accounts for: counted too
        assert np.any(reads > 1 + pulses + done)


@pytest.mark.parametrize("growth, expected", [
    # step 1 uS, window +-0.3 uS. Device 1: 2 -> 3 -> 4 -> 5 (3 SET pulses, in the window). Device 2: 7.5 -> 6.5 -> 5.5
    # -> 4.5 -> 3.5 -> 2.5 (5 RESET), SET -> 3.5; then each iteration RESETs to 2.5 and SETs to 3.5: the window (0.6)
    # is narrower than a step, so 4 iterations end at 3.5 after 6 + 2 + 2 + 2 pulses, not converged. Device 3: inside
    # at once, 0 pulses. Reads: the first, one after each pulse, and a confirming one when a read falls inside.
    (0.0, ([5.0, 3.5, 10.2], [3, 12, 0], [5, 13, 2], [True, False, True])),
    # steps growing by half a step per pulse of a ramp: device 1: 2 -> 3 -> 4.5 -> 6.5 (SET 1, 1.5, 2), RESET 5.5 ->
    # 4.0 (1, 1.5), SET 5.0: 6 pulses. Device 2: RESET 6.5 -> 5.0 -> 3.0 (1, 1.5, 2): inside, 3 pulses.
    (0.5, ([5.0, 3.0, 10.2], [6, 3, 0], [8, 5, 2], [True, True, True])),
])  # fmt: skip
def test_the_loop_on_a_hand_computed_three_device_case(growth, expected):
    prog = loop(window_us=0.3, max_pulses=30, max_iterations=4, pulse={"step_us": 1.0, "step_growth": growth})
    targets, starts = pairs([5.0, 3.0, 10.0]), pairs([2.0, 7.5, 10.2])
    g, count, reads, done = cells.verified(targets, starts, prog, seed=0)
    g_want, pulses_want, reads_want, done_want = expected
    np.testing.assert_array_equal(g[0, 0], np.float32(g_want))
    np.testing.assert_array_equal(count[0, 0], pulses_want)
    np.testing.assert_array_equal(reads[0, 0], reads_want)
    np.testing.assert_array_equal(done[0, 0], done_want)
    assert np.all(g[1] == 0) and np.all(count[1] == 0) and np.all(reads[1] == 2) and np.all(done[1])  # G- at its target 0


def test_pulse_counts_follow_the_closed_form_of_a_fixed_step():
    """Start at 0, steps of exactly 0.5 uS, window +-0.3 uS (wider than half a step): every device converges after
    ceil((T - 0.3) / 0.5) SET pulses, at that many steps."""
    targets = np.arange(0.41, 20.0, 0.37)
    prog = loop(window_us=0.3, max_pulses=100, max_iterations=3, pulse={"step_us": 0.5})
    g, count, _, done = cells.verified(pairs(targets), np.zeros((2, 1, len(targets)), np.float32), prog, seed=3)
    k = np.ceil((targets.astype(np.float32).astype(np.float64) - 0.3) / 0.5)
    np.testing.assert_array_equal(count[0, 0], k)
    np.testing.assert_array_equal(g[0, 0], (0.5 * k).astype(np.float32))
    assert done.all()


def test_convergence_rate_of_one_random_pulse_matches_the_normal_law():
    """One pulse and one iteration allowed, start a = 1 uS below the window [T - w, T + w], step 1 uS with a 40%
    spread: it converges exactly when the step lands in [a, a + 2w]: P = Phi((a + 2w - 1) / 0.4) - Phi((a - 1) / 0.4)."""
    n, a, w = 20000, 1.0, 0.25
    targets = np.full((2, 1, n), 10.0, np.float32)
    starts = np.full((2, 1, n), 10.0 - w - a, np.float32)
    prog = loop(window_us=w, max_pulses=1, max_iterations=1, confirm=False, pulse={"step_us": 1.0, "step_spread": 0.4})
    _, count, _, done = cells.verified(targets, starts, prog, seed=11)
    expected = norm.cdf((a + 2 * w - 1) / 0.4) - norm.cdf((a - 1) / 0.4)
    assert np.all(count == 1)
    assert abs(done.mean() - expected) < 4 * np.sqrt(expected * (1 - expected) / (2 * n))


def test_mean_pulses_match_renewal_theory():
    """Steps X = 1 + 0.3 n (uS), start 0, lower window edge at x = 20 uS, a window wider than any step: SET pulses
    until the sum first passes x, whose mean is x / E[X] + E[X^2] / (2 E[X]^2) = 20 + (1 + 0.09) / 2 (renewal theory)."""
    n = 20000
    targets = np.full((2, 1, n), 22.0, np.float32)
    prog = loop(window_us=2.0, max_pulses=200, max_iterations=1, confirm=False, pulse={"step_us": 1.0, "step_spread": 0.3})
    _, count, _, done = cells.verified(targets, np.zeros_like(targets), prog, seed=12)
    assert done.all()
    assert abs(count.mean() - (20 + 1.09 / 2)) < 0.05


@pytest.mark.parametrize("workers, piece_pairs", [(1, 1 << 16), (3, 97), (2, 5)])
def test_the_same_programming_whatever_the_piece_size_and_thread_count(workers, piece_pairs, monkeypatch):
    prog = NOISY["absolute window, read noise"]
    rng = np.random.default_rng(4)
    targets = rng.uniform(0, 25, (2, 40, 31)).astype(np.float32)
    starts = rng.uniform(0, 25, (2, 40, 31)).astype(np.float32)
    before = cells.verified(targets, starts, prog, seed=9)
    monkeypatch.setattr(pieces, "workers", lambda: workers)
    monkeypatch.setattr(pieces, "PIECE_PAIRS", piece_pairs)
    monkeypatch.setattr(pieces, "_pool", None)
    after = cells.verified(targets, starts, prog, seed=9)
    for a, b in zip(before, after):
        assert np.array_equal(a, b)


def test_a_stuck_device_stays_stuck_and_is_counted():
    cfg = ChipConfig.from_dict({"device": {"g_max_us": 25.0, "faults": {"p_on": 0.2}},
                                "programming": {"method": "verify", "window_us": 0.5, "pulse": {"step_us": 0.4}}})  # fmt: skip
    w = np.random.default_rng(0).uniform(-0.5, 0.5, (30, 40)).astype(np.float32)
    tiles = TileArray.from_weights(w, cfg, seed=2)
    devices = tiles.programmed()
    stuck = devices.stuck != 0
    assert np.all(devices.g_prog[stuck & (devices.stuck > 0)] == 25.0)
    far = stuck & (np.abs(25.0 - tiles.g_target[None]) > 0.5)
    assert far.sum() > 100 and not devices.converged[far].any() and np.all(devices.pulses[far] == 30)
    assert np.all(devices.verify_reads[far] == 31)  # the first read and one after each pulse of the ramp
    assert devices.converged[~stuck].all()
    report = tiles.programming_report()
    assert report["converged"] == pytest.approx(devices.converged.mean())


def test_cost_counts_the_pulses_and_a_sweep_takes_the_loop_as_an_axis():
    import torch

    from xbarsim import map_model
    from xbarsim.mapping.cost import measure_cost
    from xbarsim.models import zoo
    from xbarsim.sweeps.spec import SweepSpec

    torch.manual_seed(0)
    chip = map_model(zoo.build("lenet5", image_size=8), ChipConfig.preset("neurram"), seed=2)
    cost = measure_cost(chip, torch.rand(2, 1, 8, 8)).programming
    pulses = sum(int(m.tiles.programmed().pulses.sum()) for m in chip.chip.matrices())
    reads = sum(int(m.tiles.programmed().verify_reads.sum()) for m in chip.chip.matrices())
    assert cost["pulses"] == pulses and cost["programming_energy_pj"] == pytest.approx(pulses * 10.0)
    assert cost["verify_reads"] == reads and cost["programming_time_ns"] == pytest.approx(pulses * 100.0 + reads * 200.0)
    assert "converged" in chip.summary() and cost["converged"] == chip.chip.programming_report()["converged"]
    spec = SweepSpec.model_validate({"chip": "neurram", "model": {"zoo": "lenet5"},
                                     "axes": {"programming.window_us": [0.5, 1.0, 2.0], "device.write_noise.scale": [1.0, 2.0]}})
    assert spec.axes["programming.window_us"] == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("start", [0.0, 19.0])
def test_pulses_sized_by_the_read_error_halve_the_distance(start):
    """step_pct 50, no spread, no read noise: each pulse covers half the distance to the target, so a device d0 away
    reaches a window +-w after ceil(log2(d0 / w)) pulses (from below by SET, from above by RESET); step_pct 100 lands
    on the target with one pulse."""
    targets = np.array([1.3, 4.1, 7.7, 12.5], np.float32)
    d0 = np.abs(targets.astype(np.float64) - start)
    g, count, reads, done = cells.verified(pairs(targets), np.full((2, 1, 4), start, np.float32),
                                           loop(window_us=0.11, pulse={"step_pct": 50.0}), seed=2)
    expected = np.ceil(np.log2(d0 / 0.11))
    assert done.all() and np.array_equal(count[0, 0], expected) and np.array_equal(reads[0, 0], expected + 2)
    assert np.allclose(np.abs(g[0, 0] - targets), d0 / 2**expected, rtol=1e-5)
    g, count, _, done = cells.verified(pairs(targets), np.full((2, 1, 4), start, np.float32), loop(window_us=0.01, pulse={"step_pct": 100.0}), seed=2)
    assert done.all() and np.all(count[0, 0] == 1) and np.allclose(g[0, 0], targets, atol=1e-5)


def test_a_pulse_needs_a_step():
    with pytest.raises(ValueError, match="step_us > 0 or step_pct > 0"):
        loop(window_us=0.1, pulse={"step_spread": 0.5})


def test_devices_whose_window_reaches_the_floor_skip_the_loop_in_the_kernel_and_the_reference():
    """A device whose window reaches floor_us (T - w <= floor_us: every target at the floor, and the small ones whose
    window reaches down to it) never enters the loop: it keeps ``kept``, with one pulse, no read, no draw, in the kernel
    as in the NumPy reference; every other device is what it is without a floor (its draws depend on its position
    only)."""
    rng = np.random.default_rng(4)
    targets = np.where(rng.random((2, 13, 19)) < 0.3, 0.0, rng.uniform(0, 2, (2, 13, 19))).astype(np.float32)
    starts = rng.uniform(0, 25, targets.shape).astype(np.float32)
    kept = rng.uniform(0, 1, targets.shape).astype(np.float32)
    prog = NOISY["capped relative window"]  # w = 0.1 uS + 40% of T: below T = 1/6 uS the window reaches 0
    got = cells.verified(targets, starts, prog, seed=8, index=1, floor_us=0.0, kept=kept)
    want = verify_reference.verify(targets, starts, prog, seed=8, index=1, floor_us=0.0, kept=kept)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    g, count, reads, done = got
    half = prog.window_us + prog.window_pct / 100 * targets.astype(np.float64)
    skip = targets - prog.window_max_us * np.tanh(half / prog.window_max_us) <= 0
    assert np.any(skip & (targets > 0)) and np.any(~skip)
    assert np.array_equal(g[skip], kept[skip]) and np.all(count[skip] == 1) and np.all(reads[skip] == 0) and done[skip].all()
    for a, b in zip(got, cells.verified(targets, starts, prog, seed=8, index=1)):
        assert np.array_equal(a[~skip], b[~skip])
        assert not np.array_equal(a[skip], b[skip])  # without the floor they run the loop


def test_floor_reset_keeps_the_write_at_g_min_and_verifies_the_rest():
    """floor: reset: a device whose target is g_min gets one RESET pulse and no verify read, and keeps the
    write-noise law's draw (the one-shot value of the same seed); the others run the loop as with floor: verify."""
    values = {"device": {"g_max_us": 10.0, "write_noise": {"kind": "absolute", "sigma": 0.3}},
              "programming": {"method": "verify", "start": "reset", "window_us": 0.4, "read_noise_us": 0.1, "pulse": {"step_us": 0.7}}}  # fmt: skip
    target = np.where(np.random.default_rng(3).random((2, 20, 30)) < 0.4, 0.0, 6.0).astype(np.float32)
    at_floor = target == 0
    verified = cells.program(target, ChipConfig.from_dict(values), 7)
    values["programming"]["floor"] = "reset"
    reset = cells.program(target, ChipConfig.from_dict(values), 7)
    one_shot = cells.program(target, ChipConfig.from_dict({**values, "programming": {"method": "one_shot"}}), 7)
    assert np.array_equal(reset.g_prog[:, at_floor], one_shot.g_prog[:, at_floor])
    assert reset.g_prog[:, at_floor].std() > 0.1  # the write's spread, not the loop's exact 0
    assert np.all(reset.pulses[:, at_floor] == 1) and np.all(reset.verify_reads[:, at_floor] == 0) and reset.converged[:, at_floor].all()
    for a, b in zip(reset.arrays().values(), verified.arrays().values()):
        if a is not None:
            assert np.array_equal(a[:, ~at_floor], b[:, ~at_floor])
