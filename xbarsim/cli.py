"""The ``xbarsim`` command line."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cmd_info(args: argparse.Namespace) -> int:
    import numba

    from .config import PRESETS

    print(f"xbarsim {_version('xbarsim')}  (python {platform.python_version()}, {platform.machine()})")
    for package in ("numpy", "numba", "llvmlite", "scipy", "pydantic", "h5py", "torch"):
        print(f"  {package:<10} {_version(package)}")
    from .crossbar.threads import apply_policy

    print(f"numba threads: {numba.config.NUMBA_NUM_THREADS} (of {os.cpu_count()} CPUs), threading layer: {apply_policy()}")
    print("presets (ChipConfig.preset(name), or `preset: name` in a chip YAML):")
    for name, preset in PRESETS.items():
        print(f"  {name:<9} {preset['description']}")
    return 0


def cmd_bench_tile(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .bench import tile

    cases = tile.CASES if not args.case else tuple(args.case)
    unknown = [c for c in cases if c not in tile.CASES]
    if unknown:
        print(f"unknown case(s) {unknown}; choose from: {list(tile.CASES)}", file=sys.stderr)
        return 2
    with tqdm(total=len(cases), desc="bench tile", unit="case", file=sys.stderr) as bar:
        result = tile.run(args.size, tuple(args.tiles), tuple(args.batches), cases, args.seconds, args.import_order,
                          progress=lambda _: bar.update())  # fmt: skip
    print(tile.format_table(result))
    tile.write_json(result, Path(args.output), args.import_order)
    print(f"wrote {args.output}")
    return 0


def cmd_bench_model(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .bench import model
    from .bench.workloads import MODELS

    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        print(f"unknown model(s) {unknown}; choose from: {list(MODELS)}", file=sys.stderr)
        return 2
    total = sum(len(args.lstm_batches) if m == "lstm" else 1 for m in args.models)
    with tqdm(total=total, desc="bench model", unit="run", file=sys.stderr) as bar:
        result = model.run(tuple(args.models), args.chip, args.batch, tuple(args.lstm_batches), args.seconds,
                           args.import_order, progress=lambda _: bar.update())  # fmt: skip
    print(model.format_table(result))
    model.write_json(result, Path(args.output), args.import_order)
    print(f"wrote {args.output}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    rows, summary, files = demo.run(epochs=args.epochs, chips=args.chips, preset=args.chip, seed=args.seed, output=Path(args.output))
    print(summary)
    print()
    print(demo.format_table(rows, args.chips, args.chip))
    from .sweeps.report import format_report
    from .sweeps.store import read_results

    print()
    print(format_report(read_results(files[0])))
    print("files: " + ", ".join(str(f) for f in files))
    return 0


def _chip_config(spec: str):
    from .config import PRESETS, ChipConfig

    return ChipConfig.preset(spec) if spec in PRESETS else ChipConfig.from_file(spec)


def _json_arg(text: str | None) -> dict:
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("--model-args must be a JSON object, e.g. '{\"num_classes\": 10}'")
    return value


def cmd_map(args: argparse.Namespace) -> int:
    from .mapping.chip import map_model
    from .models.checkpoint import load_network

    cfg = _chip_config(args.chip)
    network = load_network(args.checkpoint, args.model, _json_arg(args.model_args), args.allow_pickle)
    layers = args.layers.split(",") if args.layers else None
    chip = map_model(network, cfg, seed=args.seed, layers=layers)
    chip.save(args.output)
    print(chip.summary())
    print(f"wrote {args.output}")
    return 0


def parse_duration(text: str) -> float:
    """Seconds in '3600', '90s', '15m', '1h', '1d', '2w' or '10y' (365.25 days)."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0, "y": 365.25 * 86400.0}
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 3600, 1h, 1d, 1y)") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a duration must be finite and >= 0, got {text!r}")
    return value


def cmd_eval(args: argparse.Namespace) -> int:
    from .mapping.chipfile import load_chip
    from .models import data
    from .models.checkpoint import build_model
    from .models.training import accuracy

    model = build_model(args.model, _json_arg(args.model_args)) if args.model else None
    chip = load_chip(args.chip_file, model)
    if args.reprogram is not None:
        chip.program(args.reprogram)
    if args.drift is not None:
        chip.drift(args.drift)
    split = data.load(args.data)
    acc = accuracy(chip, split.x_test, split.y_test, args.batch_size)
    print(f"{args.chip_file}: {split.name} test accuracy {100 * acc:.2f}% ({len(split.y_test)} samples, "
          f"chip '{chip.chip.cfg.name}', t = {chip.chip.t_s:g} s)")  # fmt: skip
    return 0


def _zoo_kwargs(model: str, split, given: dict) -> dict:
    """Defaults for a zoo model from the data: channels, image size, classes (given ones win)."""
    channels, height, width = (split.input_shape + (1, 1))[:3] if len(split.input_shape) == 3 else (1, 1, split.input_shape[-1])
    defaults = {
        "mlp": {"in_features": int(np.prod(split.input_shape)), "num_classes": split.num_classes},
        "lenet5": {"in_channels": channels, "image_size": height, "num_classes": split.num_classes},
        "vgg11": {"in_channels": channels, "image_size": height, "num_classes": split.num_classes},
        "resnet18": {"in_channels": channels, "num_classes": split.num_classes},
        "lstm": {"input_size": width * channels, "num_classes": split.num_classes},
        "gru": {"input_size": width * channels, "num_classes": split.num_classes},
    }.get(model, {})
    return {**defaults, **given}


def cmd_train(args: argparse.Namespace) -> int:
    from .models import data
    from .models.checkpoint import build_model, load_network, save_checkpoint
    from .models.quant import QATConfig
    from .models.training import TrainConfig, accuracy, train

    import torch

    split = data.load(args.data, seed=args.seed)
    kwargs = _zoo_kwargs(args.model, split, _json_arg(args.model_args)) if ":" not in args.model else _json_arg(args.model_args)
    torch.manual_seed(args.seed)
    model = build_model(args.model, kwargs)
    teacher = load_network(args.distill, allow_pickle=args.allow_pickle) if args.distill else None
    cfg = TrainConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
        noise_sigma=args.noisy, noise_mode=args.noise_mode,
        qat=QATConfig(args.qat, not args.asymmetric, args.scale) if args.qat else None,
        weight_noise_eta=args.weight_noise, bayesft_sigma=args.bayesft,
        gate_noise_sigma=args.gate_noise, gate_noise_relative=args.gate_noise_relative,
        distill_temperature=args.temperature, distill_beta=args.beta,
        hwa=_chip_config(args.hwa) if args.hwa else None,
    )  # fmt: skip
    losses = train(model, split, cfg, teacher=teacher)
    print(f"trained {args.model} on {split.name}: final loss {losses[-1]:.4f}, "
          f"clean test accuracy {100 * accuracy(model, split.x_test, split.y_test):.2f}%")  # fmt: skip
    save_checkpoint(model, args.output)
    print(f"wrote {args.output}")
    return 0


def parse_sigmas(text: str) -> list[float]:
    """'logspace(-2, 2, 17)' (decades, points) or a comma-separated list."""
    text = text.strip()
    if text.startswith("logspace(") and text.endswith(")"):
        low, high, n = (float(v) for v in text[9:-1].split(","))
        return list(np.logspace(low, high, int(n)))
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sigmas: use 'logspace(-2, 2, 17)' or '0.1,0.3,1', got {text!r}") from None


def cmd_robustness(args: argparse.Namespace) -> int:
    from .models import data
    from .models.checkpoint import load_network
    from .sweeps.metrics import NoMidpointError, noise_curve
    from .sweeps.plots import plot_noise_curves

    network = load_network(args.checkpoint, args.model, _json_arg(args.model_args), args.allow_pickle)
    split = data.load(args.data)
    where = "all" if args.where == "all" else args.where.split(",")
    curve = noise_curve(network, split.x_test, split.y_test, args.sigmas, args.repeats, where, args.mode, progress=True)
    print(f"{'sigma':>10} {'accuracy':>9} {'std':>7}")
    for sigma, mean, std in zip(curve.sigmas, curve.mean, curve.std):
        print(f"{sigma:>10.4g} {100 * mean:>8.2f}% {100 * std:>6.2f}%")
    try:
        fit = curve.midpoint()
        print(f"midpoint noise level: {fit.sigma_mid:.4g} ± {fit.sigma_mid_err:.2g}")
    except NoMidpointError as exc:
        print(f"midpoint noise level: none ({exc})")
    path = plot_noise_curves({Path(args.checkpoint).stem: curve}, args.plot, f"{split.name}, noise after {args.where} ({args.mode})")
    print(f"wrote {path}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibration.drift import set_drift_compensation
    from .calibration.ranges import calibrate_ranges
    from .mapping.chipfile import load_chip
    from .models import data
    from .models.checkpoint import build_model

    model = load_chip(args.chip_file, build_model(args.model, _json_arg(args.model_args)) if args.model else None)
    split = data.load(args.data)
    cfg = model.chip.cfg.tile
    if cfg.dac.range == "calibrated" or cfg.adc.range == "calibrated":
        x = split.x_train[torch_randperm(len(split.x_train), args.seed)[: args.samples]]
        for row in calibrate_ranges(model, x, args.method, args.q):
            dac = "-" if row.dac is None else f"{row.dac.min():.3g}..{row.dac.max():.3g}"
            adc = "-" if row.adc is None else f"{row.adc.min():.3g}..{row.adc.max():.3g}"
            print(f"{row.layer:<28} DAC {dac:<18} ADC {adc}")
    else:
        print("no calibrated converter ranges in this chip (tile.dac/adc.range); skipping range calibration")
    if args.compensation:
        set_drift_compensation(model, args.compensation)
    print(f"drift compensation: {model.chip.cfg.drift_compensation} (reference read at t = 0)")
    output = args.output or args.chip_file
    model.save(output)
    print(f"wrote {output}")
    return 0


def torch_randperm(n: int, seed: int):
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def cmd_denoise(args: argparse.Namespace) -> int:
    from .calibration.denoise import denoise
    from .mapping.chipfile import load_chip
    from .models import data
    from .models.checkpoint import build_model

    model = load_chip(args.chip_file, build_model(args.model, _json_arg(args.model_args)) if args.model else None)
    split = data.load(args.data)
    result = denoise(model, split, args.target, args.max_blocks, args.epochs, args.ratio, args.seed)
    print("sensitivity (accuracy drop with only that layer on the chip):")
    for name, drop in result.sensitivity.items():
        print(f"  {name:<28} {100 * drop:6.2f}%")
    print(f"accuracy on the chip: {100 * result.baseline_accuracy:.2f}%")
    for name, acc in result.steps:
        print(f"  + block after {name:<24} -> {100 * acc:.2f}%")
    reached = "reached" if result.final_accuracy >= args.target else "not reached"
    print(f"target {100 * args.target:.2f}% {reached}; {result.block_parameters:,} block parameters = "
          f"{result.overhead_percent:.2f}% of the network's {result.model_parameters:,}")  # fmt: skip
    output = args.output or args.chip_file
    model.save(output)
    print(f"wrote {output}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweeps.report import format_report
    from .sweeps.runner import run_sweep
    from .sweeps.spec import SweepSpec
    from .sweeps.store import read_results

    spec = SweepSpec.from_file(args.spec)
    store = run_sweep(spec, args.output, args.executor, args.workers, args.retries)
    print(format_report(read_results(store.path)))
    print(f"wrote {store.path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .sweeps.plots import plot_sweep
    from .sweeps.report import format_report
    from .sweeps.store import read_results

    results = read_results(args.store)
    print(format_report(results))
    for path in plot_sweep(results, args.plot or Path(args.store).with_suffix(".png")):
        print(f"wrote {path}")
    if args.csv:
        print(f"wrote {results.to_csv(args.csv)}")
    return 0


def _model_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument("--model", help=f"{purpose}: a zoo name or package.module:Class")
    parser.add_argument("--model-args", help="JSON object of the model's constructor arguments")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xbarsim", description="Simulate analog in-memory-computing chips.")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="versions, Numba threads and the chip presets")
    info.set_defaults(func=cmd_info)

    bench = sub.add_parser("bench", help="throughput benchmarks: tiles against a float32 GEMM, networks against torch")
    bench_sub = bench.add_subparsers(dest="target", required=True)
    order_help = "import torch before xbarsim in the timed processes (default, as in a user's script), or after"
    bench_tile = bench_sub.add_parser("tile", help="MVMs per second of one tiled weight matrix, cold and warm")
    bench_tile.add_argument("--size", type=int, default=512, help="weight matrix is size x size (default 512)")
    bench_tile.add_argument("--tiles", type=int, nargs="+", default=[256, 512], help="tile sizes (default 256 512)")
    bench_tile.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256], help="batch sizes (default 1 32 256)")
    bench_tile.add_argument("--case", action="append", help="run only this case (repeatable); default all")
    bench_tile.add_argument("--seconds", type=float, default=0.3, help="minimum timed seconds per measurement")
    bench_tile.add_argument("--import-order", choices=["torch", "xbarsim"], default="torch", help=order_help)
    bench_tile.add_argument("-o", "--output", default="bench-results/tile.json", help="JSON file for the results")
    bench_tile.set_defaults(func=cmd_bench_tile)
    bench_model = bench_sub.add_parser("model", help="networks on a chip vs torch alone in its own process, cold and warm")
    bench_model.add_argument("--models", nargs="+", default=["lenet5", "vgg11", "resnet18", "lstm"],
                             help="default: lenet5 vgg11 resnet18 lstm (2x256, 50 steps)")  # fmt: skip
    bench_model.add_argument("--chip", default="pcm", help="chip preset (default pcm)")
    bench_model.add_argument("--batch", type=int, default=64, help="images per forward for the CNNs (default 64)")
    bench_model.add_argument("--lstm-batches", type=int, nargs="+", default=[32, 1], help="sequences per forward for the LSTM (default 32 1)")
    bench_model.add_argument("--seconds", type=float, default=3.0, help="minimum warm seconds timed per network")
    bench_model.add_argument("--import-order", choices=["torch", "xbarsim"], default="torch", help=order_help)
    bench_model.add_argument("-o", "--output", default="bench-results/model.json", help="JSON file for the results")
    bench_model.set_defaults(func=cmd_bench_model)

    demo = sub.add_parser("demo", help="LeNet-5 on digits: accuracy in float, on an ideal chip, on PCM chips over time")
    demo.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    demo.add_argument("--chips", type=int, default=5, help="chips programmed per point (default 5)")
    demo.add_argument("--chip", default="pcm", help="chip preset (default pcm)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("-o", "--output", default="xbarsim-demo", help="folder for the sweep store and plots")
    demo.set_defaults(func=cmd_demo)

    map_cmd = sub.add_parser("map", help="map a trained checkpoint onto a chip and save the chip file")
    map_cmd.add_argument("checkpoint", help="state_dict, xbarsim checkpoint, or (with --allow-pickle) a pickled module")
    map_cmd.add_argument("--model", help="zoo name (mlp, lenet5, vgg11, resnet18, lstm, gru) or package.module:Class")
    map_cmd.add_argument("--model-args", help="JSON object of the model's constructor arguments")
    map_cmd.add_argument("--chip", required=True, help="a preset name or a chip YAML/JSON file")
    map_cmd.add_argument("--layers", help="comma-separated module names to map (default: every supported layer)")
    map_cmd.add_argument("--seed", type=int, default=0, help="programming seed (default 0)")
    map_cmd.add_argument("--allow-pickle", action="store_true", help="load a pickled module (only for files you trust)")
    map_cmd.add_argument("-o", "--output", required=True, help="chip file to write (HDF5)")
    map_cmd.set_defaults(func=cmd_map)

    eval_cmd = sub.add_parser("eval", help="test accuracy of a saved chip")
    eval_cmd.add_argument("chip_file", help="chip file written by `xbarsim map`")
    eval_cmd.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH or cifar10:PATH")
    eval_cmd.add_argument("--drift", type=parse_duration, help="evaluate at this time after programming (e.g. 1h, 1d, 1y)")
    eval_cmd.add_argument("--reprogram", type=int, metavar="SEED", help="program the chip again with this seed first")
    _model_arguments(eval_cmd, "the network class, when the chip file cannot rebuild it by itself")
    eval_cmd.add_argument("--batch-size", type=int, default=512)
    eval_cmd.set_defaults(func=cmd_eval)

    train_cmd = sub.add_parser("train", help="train a network, optionally with robustness options")
    train_cmd.add_argument("--model", required=True, help="zoo name (mlp, lenet5, vgg11, resnet18, lstm, gru) or package.module:Class")
    train_cmd.add_argument("--model-args", help="JSON object of constructor arguments (zoo defaults come from the data)")
    train_cmd.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH or cifar10:PATH")
    train_cmd.add_argument("--epochs", type=int, default=30)
    train_cmd.add_argument("--lr", type=float, default=2e-3)
    train_cmd.add_argument("--batch-size", type=int, default=64)
    train_cmd.add_argument("--seed", type=int, default=0)
    train_cmd.add_argument("--noisy", type=float, default=0.0, metavar="SIGMA", help="noisy training: activation noise after every module")
    train_cmd.add_argument("--noise-mode", default="additive", choices=["additive", "multiplicative", "both"])
    train_cmd.add_argument("--qat", type=int, metavar="BITS", help="quantization-aware training with this many bits")
    train_cmd.add_argument("--scale", default="dynamic", help="QAT activation scale: dynamic or const:<max> (default dynamic)")
    train_cmd.add_argument("--asymmetric", action="store_true", help="asymmetric QAT quantizers (default symmetric)")
    train_cmd.add_argument("--weight-noise", type=float, default=0.0, metavar="ETA", help="Noisy Machines weight noise eta")
    train_cmd.add_argument("--bayesft", type=float, default=0.0, metavar="SIGMA", help="BayesFT log-normal weight perturbation")
    train_cmd.add_argument("--gate-noise", type=float, default=0.0, metavar="SIGMA", help="deep noise injection at RNN gates")
    train_cmd.add_argument("--gate-noise-relative", action="store_true", help="gate noise relative to the pre-activation std")
    train_cmd.add_argument("--distill", metavar="TEACHER", help="distil from this trained checkpoint")
    train_cmd.add_argument("--temperature", type=float, default=4.0)
    train_cmd.add_argument("--beta", type=float, default=0.5, help="weight of the distillation term")
    train_cmd.add_argument("--hwa", metavar="CHIP", help="hardware-aware training on this preset or chip YAML")
    train_cmd.add_argument("--allow-pickle", action="store_true", help="let --distill load a pickled module (trusted files only)")
    train_cmd.add_argument("-o", "--output", required=True, help="checkpoint to write")
    train_cmd.set_defaults(func=cmd_train)

    rob = sub.add_parser("robustness", help="accuracy vs activation noise, the midpoint noise level and a plot")
    rob.add_argument("checkpoint")
    rob.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH or cifar10:PATH")
    rob.add_argument("--sigmas", type=parse_sigmas, default=parse_sigmas("logspace(-2, 2, 17)"), help="default logspace(-2, 2, 17)")
    rob.add_argument("--repeats", type=int, default=10)
    rob.add_argument("--mode", default="additive", choices=["additive", "multiplicative", "both"])
    rob.add_argument("--where", default="all", help="all, or comma-separated module names (the per-layer study)")
    _model_arguments(rob, "the model, for a plain state_dict")
    rob.add_argument("--allow-pickle", action="store_true", help="load a pickled module (trusted files only)")
    rob.add_argument("--plot", default="robustness.png", help="figure to write (.png or .pdf)")
    rob.set_defaults(func=cmd_robustness)

    cal = sub.add_parser("calibrate", help="calibrate a chip's converter ranges and drift reference from data")
    cal.add_argument("chip_file")
    cal.add_argument("--data", default="digits", help="calibration inputs come from its train split")
    cal.add_argument("--method", default="percentile", choices=["absmax", "percentile", "mse"])
    cal.add_argument("--q", type=float, default=99.99, help="percentile (default 99.99)")
    cal.add_argument("--samples", type=int, default=512, help="calibration inputs (default 512)")
    cal.add_argument("--compensation", choices=["none", "global", "column"], help="switch drift compensation")
    cal.add_argument("--seed", type=int, default=0)
    _model_arguments(cal, "the network class, when the chip file cannot rebuild it by itself")
    cal.add_argument("-o", "--output", help="chip file to write (default: in place, atomically)")
    cal.set_defaults(func=cmd_calibrate)

    den = sub.add_parser("denoise", help="add and train denoising blocks until a target accuracy")
    den.add_argument("chip_file")
    den.add_argument("--data", default="digits")
    den.add_argument("--target", type=float, required=True, help="test accuracy to reach, e.g. 0.98")
    den.add_argument("--max-blocks", type=int, help="at most this many blocks (default: one per analog layer)")
    den.add_argument("--epochs", type=int, default=5, help="training epochs after each added block")
    den.add_argument("--ratio", type=float, default=0.25, help="block width as a fraction of the layer's channels")
    den.add_argument("--seed", type=int, default=0)
    _model_arguments(den, "the network class, when the chip file cannot rebuild it by itself")
    den.add_argument("-o", "--output", help="chip file to write (default: in place, atomically)")
    den.set_defaults(func=cmd_denoise)

    sweep = sub.add_parser("sweep", help="evaluate a grid of chip configurations (resumable)")
    sweep.add_argument("spec", help="sweep spec (YAML or JSON); see examples/")
    sweep.add_argument("-o", "--output", required=True, help="results store (HDF5); re-running fills in what is missing")
    sweep.add_argument("--executor", default="processes", help="processes (default), serial, dask:local or tcp://host:8786")
    sweep.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    sweep.add_argument("--retries", type=int, default=1, help="retries of a failing point before it is stored as failed")
    sweep.set_defaults(func=cmd_sweep)

    report = sub.add_parser("report", help="table and plots of a sweep store")
    report.add_argument("store")
    report.add_argument("--plot", help="figure path (.png or .pdf; default next to the store)")
    report.add_argument("--csv", help="also export every row as CSV")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as exc:  # bad input: say what, not a traceback
        print(f"xbarsim {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
