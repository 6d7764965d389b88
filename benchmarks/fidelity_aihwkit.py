"""Cross-check against IBM aihwkit 1.1.0: the same weights, inputs and network on both simulators.

aihwkit side: ``InferenceRPUConfig()`` defaults (7-bit abs-max DAC, 9-bit ADC with bound 12, output noise
0.06, iterative bound management, unscaled mapping) with ``PCMLikeNoiseModel(g_max=25)`` and
``GlobalDriftCompensation``. xbarsim side, two engines:
  - ``aihwkit preset``: ``ChipConfig.preset("aihwkit")``;
  - ``pcm matched``: the ``pcm`` preset with aihwkit's converters (7-bit dynamic DAC, 9-bit ADC bound 12,
    output noise 0.06).
A row whose xbarsim setting this checkout does not have (preset ``aihwkit``, ``tile.bound_management``,
``mapping.weight_scale: none``) is printed as SKIP with the reason, so the script runs on any version.

Sections: per-|w| programming and drift statistics; a 512x512 layer's error and slope over time; the
device effects one at a time at 1 year (periphery off); a LeNet-5 on scikit-learn digits over time on
several chips, in both scaling conventions. Targets: weights within 5%, layer error within 10%, accuracy
within 2 std. Prints markdown tables, writes JSON. Runs only in the venv of ``benchmarks/fidelity_venv.sh``:

    /work/venv-aihwkit/bin/python benchmarks/fidelity_aihwkit.py [--quick] [--out bench-results/fidelity.json]

Scaling conventions: aihwkit's ``weight_scaling_omega = 0`` (default) keeps weights in their own units, so
output noise and the ADC bound are in weight units: xbarsim's ``weight_scale: none``. ``omega = 1`` with
``weight_scaling_columnwise = False`` divides each aihwkit tile (at most 512x512) by its abs-max and scales
the outputs back digitally: xbarsim's ``weight_scale: tile`` (= ``layer`` for a layer that fits one tile);
``columnwise = True`` is xbarsim's ``column``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch  # before xbarsim (Numba and torch thread pools)

try:
    import aihwkit
    from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel
    from aihwkit.nn import AnalogLinear
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.parameters.enums import BoundManagementType
except ImportError as missing:
    sys.exit(f"fidelity_aihwkit: aihwkit is not importable ({missing}); make its venv with benchmarks/fidelity_venv.sh")
from aihwkit.simulator.configs import InferenceRPUConfig, TorchInferenceRPUConfig


def _compiled_tiles_work() -> bool:
    """Whether aihwkit's compiled simulator (bound management per input vector, as the hardware would) runs with
    this torch: with another torch than its build's, rpu_base may import and still refuse every tensor."""
    try:
        from aihwkit.simulator import rpu_base  # noqa: F401

        AnalogLinear(2, 2, bias=False, rpu_config=InferenceRPUConfig())
        return True
    except (ImportError, RuntimeError):
        return False


# any other torch: aihwkit's pure-torch tiles (bound management per batch)
RPUConfig = InferenceRPUConfig if _compiled_tiles_work() else TorchInferenceRPUConfig
from tqdm import tqdm

# this checkout's xbarsim, wherever the shared venv's editable install points (the venv serves every checkout)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import xbarsim
from xbarsim import ChipConfig, TileArray, map_model
from xbarsim.atomic import atomic_write
from xbarsim.models import data, zoo
from xbarsim.models.training import TrainConfig, accuracy, train

TIMES = [("0", 0.0), ("1 h", 3600.0), ("1 d", 86400.0), ("1 month", 30 * 86400.0), ("1 year", 365.25 * 86400.0)]
YEAR = TIMES[-1][1]
TOLERANCE = {"weights": 0.05, "layer": 0.10, "accuracy_std": 2.0}
IDEAL_CONVERTER = {"bits": None, "range": "none"}
NO_PERIPHERY = {"tile.dac": IDEAL_CONVERTER, "tile.adc": IDEAL_CONVERTER, "tile.out_noise": 0.0}
MATCHED = {"tile.dac": {"bits": 7, "range": "dynamic"}, "tile.adc": {"bits": 9, "range": "fixed", "bound": 12.0},
           "tile.out_noise": 0.06}  # fmt: skip
ENGINES = {"aihwkit preset": ("aihwkit", {}), "pcm matched": ("pcm", MATCHED)}
# what an xbarsim without the field does anyway: asking for it there is no reason to skip
BEHAVIOUR_WITHOUT_FIELD = {"tile.bound_management": "none"}
NONE = {"kind": "none"}
# the 512x512 test layer has max|w| = 1: per-tile scaling is then exactly aihwkit's unscaled mapping, and
# runs on an xbarsim without ``weight_scale: none``
UNIT_MAX_LAYER = {"mapping.weight_scale": "tile"}


class Unsupported(Exception):
    """This xbarsim has no such preset or setting (e.g. before the fidelity features are merged)."""


@dataclass(frozen=True)
class Setting:
    """One comparison: aihwkit's knobs and the xbarsim values (dotted paths) that mean the same."""

    label: str
    omega: float = 0.0
    columnwise: bool = False
    bound_management: bool = True
    compensation: bool = True
    periphery: bool = True
    noise: dict = field(default_factory=dict)  # PCMLikeNoiseModel scales, e.g. {"drift_scale": 0.0}
    xbarsim: dict = field(default_factory=dict)

    def xbarsim_values(self) -> dict:
        scale = "none" if self.omega == 0 else ("column" if self.columnwise else "tile")
        values = {"mapping.weight_scale": scale, "drift_compensation": "global" if self.compensation else "none",
                  "tile.bound_management": "iterative" if self.bound_management else "none"}  # fmt: skip
        return {**values, **(NO_PERIPHERY if not self.periphery else {}), **self.xbarsim}


def rpu_config(s: Setting):
    cfg = RPUConfig()
    cfg.noise_model = PCMLikeNoiseModel(g_max=25.0, **s.noise)
    cfg.drift_compensation = GlobalDriftCompensation() if s.compensation else None
    cfg.mapping.weight_scaling_omega = s.omega
    cfg.mapping.weight_scaling_columnwise = s.columnwise
    if not s.bound_management:
        cfg.forward.bound_management = BoundManagementType.NONE
    cfg.forward.is_perfect = not s.periphery
    return cfg


def xbarsim_config(engine: str, values: dict) -> ChipConfig:
    """The engine's chip with ``values`` set; Unsupported names what this xbarsim lacks."""
    preset, base_values = ENGINES[engine]
    if preset not in xbarsim.config.PRESETS:
        raise Unsupported(f"no preset {preset!r} in this xbarsim")
    cfg = ChipConfig.preset(preset).with_values(base_values)
    for dotted, value in values.items():
        try:
            cfg = cfg.with_values({dotted: value})
        except KeyError:
            if BEHAVIOUR_WITHOUT_FIELD.get(dotted) != value:
                raise Unsupported(f"no field {dotted} in this xbarsim") from None
        except ValueError as error:  # pydantic's ValidationError
            reason = error.errors()[0]["msg"] if hasattr(error, "errors") else str(error)
            raise Unsupported(f"{dotted}={value!r} refused ({reason})") from None
    return cfg


# ---------------------------------------------------------------- measurements
def layer_error(y: np.ndarray, y_ideal: np.ndarray) -> tuple[float, float]:
    """(std of y - slope * y_ideal relative to std(y_ideal), the least-squares slope)."""
    y, y_ideal = y.astype(np.float64), y_ideal.astype(np.float64)
    slope = float((y * y_ideal).sum() / (y_ideal * y_ideal).sum())
    return float(np.std(y - slope * y_ideal) / np.std(y_ideal)), slope


def aihwkit_layer(s: Setting, w: np.ndarray, x: np.ndarray, times: list[float], seed: int) -> list[np.ndarray]:
    """Outputs of an AnalogLinear holding w for inputs x at each time (one programming, seed via torch)."""
    torch.manual_seed(seed)
    layer = AnalogLinear(w.shape[1], w.shape[0], bias=False, rpu_config=rpu_config(s))
    layer.set_weights(torch.from_numpy(w))
    layer.eval()
    layer.program_analog_weights()
    outputs = []
    for t in times:
        layer.drift_analog_weights(t)
        with torch.no_grad():
            outputs.append(layer(torch.from_numpy(x)).numpy())
    return outputs


def xbarsim_layer(cfg: ChipConfig, w: np.ndarray, x: np.ndarray, times: list[float], seed: int) -> list[np.ndarray]:
    tiles = TileArray.from_weights(w, cfg, seed)
    outputs = []
    for t in times:
        tiles.drift(t)
        outputs.append(tiles.mvm(x))
    return outputs


def bin_statistics(realized: np.ndarray, w: np.ndarray, bins: int) -> list[dict]:
    """Per bin of |w| / max|w|: count, mean and std of (realized - w) sign(w) / max|w|, the error along
    the weight's sign (negative: the weight shrank towards 0, as drift does)."""
    w_max = float(np.abs(w).max())
    which = np.minimum((np.abs(w) / w_max * bins).astype(int), bins - 1)
    error = (realized - w).astype(np.float64) * np.where(w < 0, -1.0, 1.0) / w_max
    stats = []
    for k in range(bins):
        e = error[which == k]
        label = f"{k / bins:.3g}-{(k + 1) / bins:.3g}"
        stats.append({"bin": label, "n": e.size, "mean": float(e.mean()), "std": float(e.std())})
    return stats


# ---------------------------------------------------------------- sections
def weight_section(w: np.ndarray, seeds: list[int], bar) -> list[dict]:
    """Realized weights (one-hot reads through an ideal periphery) per |w| bin, three stages."""
    stages = [
        ("programming, t = 0", 0.0, {"drift_scale": 0.0, "read_noise_scale": 0.0},
         {"device.drift": NONE, "device.read_noise": NONE}),
        ("drift to 1 year, no read noise", YEAR, {"read_noise_scale": 0.0}, {"device.read_noise": NONE}),
        ("1 year, drift and read noise", YEAR, {}, {}),
    ]
    eye = np.eye(w.shape[1], dtype=np.float32)
    rows = []
    for stage, t, noise, values in stages:
        s = Setting(stage, compensation=False, bound_management=False, periphery=False, noise=noise,
                    xbarsim={**values, **UNIT_MAX_LAYER})
        cfg = xbarsim_config("pcm matched", s.xbarsim_values())
        realized = {"aihwkit": [], "xbarsim": []}
        for seed in seeds:
            realized["aihwkit"].append(aihwkit_layer(s, w, eye, [t], seed)[0].T)
            realized["xbarsim"].append(xbarsim_layer(cfg, w, eye, [t], seed)[0].T)
            bar.update()
        stats = {k: bin_statistics(np.concatenate(v), np.concatenate([w] * len(seeds)), 8) for k, v in realized.items()}
        for a, b in zip(stats["aihwkit"], stats["xbarsim"]):
            ok = abs(b["mean"] - a["mean"]) <= TOLERANCE["weights"] * max(abs(a["mean"]), a["std"]) and abs(
                b["std"] - a["std"]) <= TOLERANCE["weights"] * a["std"]  # fmt: skip
            rows.append({"stage": stage, "bin": a["bin"], "aihwkit": a, "xbarsim": b,
                         "status": "PASS" if ok else "MISS"})
    return rows


def layer_section(settings: list[Setting], w, x, seeds, bar, times=TIMES) -> list[dict]:
    """Error and slope of the layer per setting and time, aihwkit against each xbarsim engine."""
    y_ideal = x @ w.T
    t_s = [t for _, t in times]
    rows = []
    for s in settings:
        results = {"aihwkit": [[layer_error(y, y_ideal) for y in aihwkit_layer(s, w, x, t_s, seed)] for seed in seeds]}
        bar.update(len(seeds))
        for engine in ENGINES:
            try:
                cfg = xbarsim_config(engine, s.xbarsim_values())
                results[engine] = [[layer_error(y, y_ideal) for y in xbarsim_layer(cfg, w, x, t_s, seed)]
                                   for seed in seeds]
            except Unsupported as reason:
                results[engine] = str(reason)
            bar.update(len(seeds))
        for k, (label, t) in enumerate(times):
            ref = np.mean([r[k] for r in results["aihwkit"]], axis=0)
            row = {"setting": s.label, "time": label, "t_s": t, "aihwkit": {"error": ref[0], "slope": ref[1]}}
            for engine in ENGINES:
                if isinstance(results[engine], str):
                    row[engine] = {"status": "SKIP", "reason": results[engine]}
                    continue
                err, slope = np.mean([r[k] for r in results[engine]], axis=0)
                # the error is relative to the ideal output, so a different gain scales it: judge the
                # error relative to the signal (error / slope) as well
                ratio, signal_ratio = err / ref[0], (err / slope) / (ref[0] / ref[1])
                ok = max(abs(ratio - 1), abs(signal_ratio - 1)) <= TOLERANCE["layer"]
                row[engine] = {"error": err, "slope": slope, "ratio": ratio, "signal_ratio": signal_ratio,
                               "status": "PASS" if ok else "MISS"}
            rows.append(row)
    return rows


def cnn_section(settings: list[Setting], epochs: int, chips: int, bar) -> tuple[float, list[dict]]:
    """LeNet-5 on digits (trained once, seed 0): test accuracy per time over ``chips`` programmings."""
    split = data.digits()
    torch.manual_seed(0)
    model = zoo.build("lenet5", image_size=8)
    train(model, split, TrainConfig(epochs=epochs, lr=3e-3), progress=False)
    x, y = split.x_test, split.y_test
    float_acc = accuracy(model, x, y)
    bar.update()
    rows = []
    for s in settings:
        acc = {"aihwkit": np.zeros((chips, len(TIMES)))}
        analog = convert_to_analog(copy.deepcopy(model), rpu_config(s)).eval()
        for chip in range(chips):
            torch.manual_seed(1000 + chip)
            analog.program_analog_weights()
            for k, (_, t) in enumerate(TIMES):
                analog.drift_analog_weights(t)
                acc["aihwkit"][chip, k] = accuracy(analog, x, y)
        bar.update(chips)
        for engine in ENGINES:
            try:
                mapped = map_model(model, xbarsim_config(engine, s.xbarsim_values()))
                acc[engine] = np.zeros((chips, len(TIMES)))
                for chip in range(chips):
                    mapped.chip.program(chip)
                    for k, (_, t) in enumerate(TIMES):
                        mapped.chip.drift(t)
                        acc[engine][chip, k] = accuracy(mapped, x, y)
            except Unsupported as reason:
                acc[engine] = str(reason)
            bar.update(chips)
        for k, (label, t) in enumerate(TIMES):
            ref = acc["aihwkit"][:, k]
            row = {"setting": s.label, "time": label, "t_s": t, "aihwkit": {"mean": ref.mean(), "std": ref.std(ddof=1)}}
            for engine in ENGINES:
                if isinstance(acc[engine], str):
                    row[engine] = {"status": "SKIP", "reason": acc[engine]}
                    continue
                ours = acc[engine][:, k]
                pooled = np.sqrt((ref.var(ddof=1) + ours.var(ddof=1)) / 2)
                ok = abs(ours.mean() - ref.mean()) <= TOLERANCE["accuracy_std"] * max(pooled, 1 / len(y))
                row[engine] = {"mean": ours.mean(), "std": ours.std(ddof=1), "status": "PASS" if ok else "MISS"}
            rows.append(row)
    return float_acc, rows


# ---------------------------------------------------------------- report
def _engine_cells(row: dict, fmt) -> str:
    cells = []
    for engine in ENGINES:
        r = row[engine]
        cells += ["SKIP", r["reason"]] if r["status"] == "SKIP" else [fmt(r), r["status"]]
    return " | ".join(cells)


def print_tables(report: dict) -> None:
    engines = " | ".join(f"xbarsim {e} | status" for e in ENGINES)
    rule = "|---" * (2 + 2 * len(ENGINES) + 1) + "|"
    print("\n### Realized weight error along sign(w) per |w| bin (units of max|w|; mean / std)\n")
    print("| stage | |w| / max | aihwkit | xbarsim pcm | status |\n|---|---|---|---|---|")
    for r in report["weights"]:
        a, b = r["aihwkit"], r["xbarsim"]
        stat = f"{a['mean']:+.4f} / {a['std']:.4f} | {b['mean']:+.4f} / {b['std']:.4f}"
        print(f"| {r['stage']} | {r['bin']} | {stat} | {r['status']} |")
    titles = {"layer": "512x512 layer: error (slope)",
              "isolation": "Device effects alone, no periphery, no compensation"}
    for key, title in titles.items():
        print(f"\n### {title}; xbarsim: ratio of the error, and of error / slope, to aihwkit's\n")
        print(f"| setting | time | aihwkit | {engines} |\n{rule}")
        for r in report[key]:
            cells = _engine_cells(
                r, lambda e: f"{e['error']:.4f} ({e['slope']:.3f}) x{e['ratio']:.2f} / x{e['signal_ratio']:.2f}")
            ref = f"{r['aihwkit']['error']:.4f} ({r['aihwkit']['slope']:.3f})"
            print(f"| {r['setting']} | {r['time']} | {ref} | {cells} |")
    float_acc = 100 * report["cnn_float_accuracy"]
    print(f"\n### LeNet-5 on digits (float {float_acc:.1f}%): accuracy, mean ± std over chips\n")
    print(f"| setting | time | aihwkit | {engines} |\n{rule}")
    for r in report["cnn"]:
        cells = _engine_cells(r, lambda e: f"{100 * e['mean']:.1f} ± {100 * e['std']:.1f}%")
        ref = f"{100 * r['aihwkit']['mean']:.1f} ± {100 * r['aihwkit']['std']:.1f}%"
        print(f"| {r['setting']} | {r['time']} | {ref} | {cells} |")


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def run_arguments(description: str, out: str) -> tuple[argparse.Namespace, list[int], int, int]:
    """The command line of a fidelity script: (arguments, programming seeds, CNN chips, CNN training epochs)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed per layer setting, 2 chips, 5 epochs")
    parser.add_argument("--chips", type=int, default=5, help="chips (programmings) per CNN setting (>= 2)")
    parser.add_argument("--out", default=out, help="JSON file for the results")
    args = parser.parse_args()
    return args, [0] if args.quick else [0, 1, 2], 2 if args.quick else max(2, args.chips), 5 if args.quick else 30


def unit_max_weights(rng: np.random.Generator) -> np.ndarray:
    """512x512 weights uniform in [-1, 1] with max|w| = 1: unscaled and scaled mappings coincide."""
    w = rng.uniform(-1, 1, (512, 512)).astype(np.float32)
    return w / np.abs(w).max()


def main() -> int:
    args, seeds, chips, epochs = run_arguments(__doc__.splitlines()[0], "bench-results/fidelity.json")
    start = time.time()
    rng = np.random.default_rng(0)
    w = unit_max_weights(rng)
    x = rng.uniform(-1, 1, (256 if args.quick else 512, 512)).astype(np.float32)

    layer_settings = [
        Setting(f"BM {'iterative' if bm else 'none'}, {'global' if comp else 'no'} compensation",
                bound_management=bm, compensation=comp, xbarsim=UNIT_MAX_LAYER)
        for comp in (True, False) for bm in (True, False)
    ]  # fmt: skip
    off = {"prog_noise_scale": 0.0, "drift_scale": 0.0, "read_noise_scale": 0.0}
    models = {"prog_noise_scale": {"device.write_noise": NONE}, "drift_scale": {"device.drift": NONE},
              "read_noise_scale": {"device.read_noise": NONE}}  # fmt: skip

    def only(label: str, *kept: str) -> Setting:
        noise = {k: v for k, v in off.items() if k not in kept}
        values = {path: value for k in noise for path, value in models[k].items()} | UNIT_MAX_LAYER
        return Setting(label, bound_management=False, compensation=False, periphery=False, noise=noise, xbarsim=values)

    isolation = [
        only("programming only", "prog_noise_scale"), only("drift only", "drift_scale"),
        only("read noise only", "read_noise_scale"), only("drift + read noise", "drift_scale", "read_noise_scale"),
        only("all device effects", *off),
    ]  # fmt: skip
    cnn_settings = [
        Setting("omega 0 / none, BM iterative"), Setting("omega 0 / none, BM none", bound_management=False),
        Setting("omega 1 / tile, BM iterative", omega=1.0),
        Setting("omega 1 / tile, BM none", omega=1.0, bound_management=False),
        Setting("omega 1 columnwise / column, BM none", omega=1.0, columnwise=True, bound_management=False),
    ]  # fmt: skip

    units = 3 * len(seeds) + (len(layer_settings) + len(isolation)) * 3 * len(seeds) + 1 + len(cnn_settings) * 3 * chips
    with tqdm(total=units, desc="fidelity", file=sys.stderr) as bar:
        report = {"weights": weight_section(w, seeds, bar)}
        report["layer"] = layer_section(layer_settings, w, x, seeds, bar)
        report["isolation"] = layer_section(isolation, w, x, seeds, bar, times=TIMES[-1:])
        report["cnn_float_accuracy"], report["cnn"] = cnn_section(cnn_settings, epochs, chips, bar)
    settings = {s.label: asdict(s) for s in layer_settings + isolation + cnn_settings}
    finish(report, args, start, {"layer_seeds": seeds, "cnn_chips": chips, "cnn_epochs": epochs, "settings": settings}, print_tables)
    return 0


def finish(report: dict, args: argparse.Namespace, start: float, meta: dict, print_tables) -> None:
    """Stamp the report (date, versions, wall time, ``meta``), print its tables, write it whole to ``args.out``."""
    report["meta"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
        "wall_s": round(time.time() - start, 1), "torch": torch.__version__, "aihwkit": aihwkit.__version__,
        "aihwkit_rpu_config": RPUConfig.__name__, "xbarsim": xbarsim.__version__, "xbarsim_path": xbarsim.__file__, "tolerance": TOLERANCE, **meta,
    }  # fmt: skip
    print_tables(report)
    with atomic_write(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=1, default=json_default))
    print(f"\n{report['meta']['wall_s']:.0f} s; results in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
