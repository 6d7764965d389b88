"""The ``xbarsim`` command line.

Bad input (an option, a file, a config) gets one line on stderr naming it, and exit status 2;
``xbarsim --debug COMMAND ...`` (or ``--debug`` after the command) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

from . import __version__
from .errors import XbarsimError


# ---------------------------------------------------------------- argument types
def bounded(kind: type, low: float | None = None, high: float | None = None, *, above: bool = False,
            high_text: str | None = None) -> Callable[[str], float]:  # fmt: skip
    """An argparse ``type=`` for an int or a finite float within [low, high] (``above``: > low instead of >=);
    ``high_text`` shows the upper bound in messages."""
    what = "an integer" if kind is int else "a number"
    shown_high = high_text or high
    if low is not None and high is not None and not above:
        what += f" from {low} to {shown_high}"
    else:
        bounds = ((">" if above else ">=", low), ("<=", shown_high))
        what += " " + " and ".join(f"{symbol} {bound}" for symbol, bound in bounds if bound is not None)

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        low_ok = low is None or (value > low if above else value >= low)
        if not (math.isfinite(value) and low_ok and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


def preset_name(text: str) -> str:
    """An argparse ``type=`` for a chip preset's name; any other name gets the list of presets."""
    from .config import PRESETS

    if text not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {text[:40]!r}; choose from {', '.join(sorted(PRESETS))}")
    return text


POSITIVE_INT = bounded(int, 1)
NON_NEGATIVE_INT = bounded(int, 0)
SEED = bounded(int, 0, 2**63 - 1, high_text="2**63 - 1")
POSITIVE = bounded(float, 0, above=True)
NON_NEGATIVE = bounded(float, 0)
FRACTION = bounded(float, 0, 1)


def json_object(text: str) -> dict:
    """An argparse ``type=`` for a JSON object (``--model-args``)."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        example = '{"num_classes": 10}'
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}); give an object, e.g. '{example}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, e.g. '{{\"num_classes\": 10}}', got {text[:60]!r}")
    return value


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cmd_info(args: argparse.Namespace) -> int:
    import numba

    from .presets import PRESET_SOURCES, PRESETS

    print(f"xbarsim {_version('xbarsim')}  (python {platform.python_version()}, {platform.machine()})")
    for package in ("numpy", "numba", "llvmlite", "scipy", "pydantic", "h5py", "torch"):
        print(f"  {package:<10} {_version(package)}")
    from .crossbar.threads import apply_policy

    print(f"numba threads: {numba.config.NUMBA_NUM_THREADS} (of {os.cpu_count()} CPUs), threading layer: {apply_policy()}")
    print("presets (ChipConfig.preset(name), or `preset: name` in a chip YAML):")
    for name, preset in PRESETS.items():
        print(f"  {name:<9} {preset['description']}")
        for field_name, source in PRESET_SOURCES.get(name, {}).items():
            print(f"      {field_name}: {source}")
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
    from .config import chip_config

    return chip_config(spec)


def _json_arg(value: dict | None) -> dict:
    """``--model-args`` as parsed by ``json_object``, or {} when not given."""
    return dict(value or {})


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


def _load_chip(args: argparse.Namespace):
    """The command's chip file; its network from --model/--model-args when given (the user's code, never the file's)."""
    from .errors import XbarsimError
    from .mapping.chipload import load_chip
    from .models.checkpoint import build_model

    if args.model_args and not args.model:
        raise XbarsimError("--model-args needs --model (the network the arguments build)")
    return load_chip(args.chip_file, build_model(args.model, _json_arg(args.model_args)) if args.model else None)


def cmd_eval(args: argparse.Namespace) -> int:
    from .models import data
    from .models.training import accuracy

    chip = _load_chip(args)
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

    split = data.load(args.data)  # the split every command uses: --seed changes the training, not which samples are test
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


MIN_SIGMAS, MAX_SIGMAS = 5, 1000


def parse_sigmas(text: str) -> list[float]:
    """'logspace(-2, 2, 17)' (decades, points) or a comma-separated list: ``MIN_SIGMAS`` (the midpoint fit
    needs them) to ``MAX_SIGMAS`` finite values > 0 (the curve is fitted and drawn in log10(sigma))."""
    text = text.strip()
    usage = (f"use 'logspace(-2, 2, 17)' or '0.01,0.1,0.3,1,3' ({MIN_SIGMAS} to {MAX_SIGMAS} finite values > 0), "
             f"got {text[:60]!r}")  # fmt: skip
    try:
        if text.startswith("logspace(") and text.endswith(")"):
            low, high, n = text[9:-1].split(",")
            if not MIN_SIGMAS <= int(n) <= MAX_SIGMAS or max(abs(float(low)), abs(float(high))) > 300:
                raise ValueError
            values = list(np.logspace(float(low), float(high), int(n)))
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(usage) from None
    if not MIN_SIGMAS <= len(values) <= MAX_SIGMAS or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(usage)
    return values


def cmd_robustness(args: argparse.Namespace) -> int:
    from .models import data
    from .models.checkpoint import load_network
    from .sweeps.metrics import NoMidpointError, noise_curve
    from .sweeps.noise_kinds import parse_noise_kind
    from .sweeps.plots import plot_noise_curves

    noise = parse_noise_kind(args.noise, args.mode, args.where)
    network = load_network(args.checkpoint, args.model, _json_arg(args.model_args), args.allow_pickle)
    split = data.load(args.data)
    print(f"noise: {noise.describe()}; {args.repeats} repeats per {noise.level_name}, seed {args.seed}")
    curve = noise_curve(network, split.x_test, split.y_test, args.sigmas, args.repeats, noise, args.seed, progress=True)
    print(f"{noise.level_name:>10} {'accuracy':>9} {'std':>7}")
    for sigma, mean, std in zip(curve.sigmas, curve.mean, curve.std):
        print(f"{sigma:>10.4g} {100 * mean:>8.2f}% {100 * std:>6.2f}%")
    try:
        fit = curve.midpoint()
        print(f"midpoint {noise.level_name} ({args.noise}): {fit.sigma_mid:.4g} ± {fit.sigma_mid_err:.2g}")
    except NoMidpointError as exc:
        print(f"midpoint {noise.level_name} ({args.noise}): none ({exc})")
    path = plot_noise_curves({Path(args.checkpoint).stem: curve}, args.plot, f"{split.name}: {noise.describe()}, vs {noise.level_name}",
                             noise.level_name)
    print(f"wrote {path}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibration.calibrate import calibrate_chip, format_report
    from .models import data

    model = _load_chip(args)
    split = data.load(args.data)
    x = split.x_train[torch_randperm(len(split.x_train), args.seed)[: args.samples]]
    print(f"{args.chip_file}: chip '{model.chip.cfg.name}', t = {model.chip.t_s:g} s; calibration inputs: {len(x)} "
          f"{split.name} train samples (seed {args.seed}); accuracy on the {len(split.y_test)} held-out test samples")  # fmt: skip
    report = calibrate_chip(model, x, split.x_test, split.y_test, args.ranges, args.q, args.compensation, progress=True)
    print(format_report(report, f"{split.name} test"))
    output = args.output or args.chip_file
    if not report.changed and output == args.chip_file:
        print(f"{args.chip_file} left unchanged")
        return 0
    model.save(output)
    print(f"wrote {output}")
    return 0


def torch_randperm(n: int, seed: int):
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def cmd_denoise(args: argparse.Namespace) -> int:
    from .calibration.denoise import denoise, format_result
    from .models import data

    model = _load_chip(args)
    split = data.load(args.data)
    result = denoise(model, split, args.target, args.max_blocks, args.epochs, args.ratio, args.seed, validation=args.validation)
    print(format_result(result, f"{split.name} test"))
    output = args.output or args.chip_file
    if result.final_accuracy < result.baseline_accuracy:
        print(f"xbarsim denoise: NOT SAVED: the blocks kept on validation lower the test accuracy "
              f"({100 * result.baseline_accuracy:.2f}% -> {100 * result.final_accuracy:.2f}%); {output} was not written. "
              f"Try more --epochs, another --seed or a lower --ratio.", file=sys.stderr)  # fmt: skip
        return 1
    if not result.steps and output == args.chip_file:
        print(f"no block kept: {args.chip_file} left unchanged")
        return 0
    model.save(output)
    print(f"wrote {output}")
    return 0


def _sweep_spec_file(args: argparse.Namespace) -> str | Path:
    """The spec file a sweep runs: the positional SPEC, or the shipped example --example names."""
    from . import examples

    if (args.spec is None) == (args.example is None):
        raise ValueError("give a sweep spec file or --example NAME (one of them); `xbarsim examples` lists the examples")
    return args.spec if args.example is None else examples.path(args.example)


def cmd_examples(args: argparse.Namespace) -> int:
    from . import examples

    if args.folder is None:
        for name in examples.names():
            print(f"{name:<20} {examples.summary(name)}")
        print("run one: xbarsim sweep --example NAME -o results.h5; copy them to edit: xbarsim examples FOLDER")
        return 0
    for path in examples.copy_to(args.folder, args.force):
        print(f"wrote {path}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweeps.report import format_report
    from .sweeps.runner import run_sweep
    from .sweeps.spec import SweepSpec
    from .sweeps.store import read_results

    spec = SweepSpec.from_file(_sweep_spec_file(args))
    check_outputs({"-o": args.output}, [spec.model.checkpoint, spec.chip if isinstance(spec.chip, str) else None])
    store = run_sweep(spec, args.output, args.executor, args.workers, args.retries, max_rows=args.max_points,
                      checkpoint_s=args.checkpoint_every)  # fmt: skip
    print(format_report(read_results(store.path)))
    print(f"wrote {store.path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .sweeps.plots import plot_sweep
    from .sweeps.report import format_report
    from .sweeps.store import read_results

    results = read_results(args.store)
    print(format_report(results))
    if len(results.columns["point_id"]) == 0:
        return 0  # nothing to plot yet
    for path in plot_sweep(results, args.plot or Path(args.store).with_suffix(".png")):
        print(f"wrote {path}")
    if args.csv:
        print(f"wrote {results.to_csv(args.csv)}")
    return 0


def _model_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument("--model", help=f"{purpose}: a zoo name or package.module:Class")
    parser.add_argument("--model-args", type=json_object, help="JSON object of the model's constructor arguments")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="xbarsim", description="Simulate analog in-memory-computing chips.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="versions, Numba threads and the chip presets")
    info.set_defaults(func=cmd_info)

    bench = sub.add_parser("bench", help="throughput benchmarks: tiles against a float32 GEMM, networks against torch")
    bench_sub = bench.add_subparsers(dest="target", required=True)
    order_help = "import torch before xbarsim in the timed processes (as in a user's script), or after"
    bench_tile = bench_sub.add_parser("tile", help="MVMs per second of one tiled weight matrix, cold and warm")
    bench_tile.add_argument("--size", type=POSITIVE_INT, default=512, help="weight matrix is size x size")
    bench_tile.add_argument("--tiles", type=POSITIVE_INT, nargs="+", default=[256, 512], help="tile sizes")
    bench_tile.add_argument("--batches", type=POSITIVE_INT, nargs="+", default=[1, 32, 256], help="batch sizes")
    bench_tile.add_argument("--case", action="append", help="run only this case (repeatable); default all")
    bench_tile.add_argument("--seconds", type=bounded(float, 0), default=0.3, help="minimum timed seconds per measurement (0: the minimum of 3 rounds)")
    bench_tile.add_argument("--import-order", choices=["torch", "xbarsim"], default="torch", help=order_help)
    bench_tile.add_argument("-o", "--output", default="bench-results/tile.json", help="JSON file for the results")
    bench_tile.set_defaults(func=cmd_bench_tile)
    bench_model = bench_sub.add_parser("model", help="networks on a chip vs torch alone in its own process, cold and warm")
    bench_model.add_argument("--models", nargs="+", default=["lenet5", "vgg11", "resnet18", "lstm"],
                             help="networks to time (lstm: 2x256, 50 steps)")  # fmt: skip
    bench_model.add_argument("--chip", type=preset_name, default="pcm", help="chip preset")
    bench_model.add_argument("--batch", type=POSITIVE_INT, default=64, help="images per forward for the CNNs")
    bench_model.add_argument("--lstm-batches", type=POSITIVE_INT, nargs="+", default=[32, 1], help="sequences per forward for the LSTM")
    bench_model.add_argument("--seconds", type=bounded(float, 0), default=3.0, help="minimum warm seconds timed per network (0: the minimum of 3 rounds)")
    bench_model.add_argument("--import-order", choices=["torch", "xbarsim"], default="torch", help=order_help)
    bench_model.add_argument("-o", "--output", default="bench-results/model.json", help="JSON file for the results")
    bench_model.set_defaults(func=cmd_bench_model)

    demo = sub.add_parser("demo", help="LeNet-5 on digits: accuracy in float, on an ideal chip, on PCM chips over time")
    demo.add_argument("--epochs", type=POSITIVE_INT, default=40, help="training epochs")
    demo.add_argument("--chips", type=POSITIVE_INT, default=5, help="chips programmed per point")
    demo.add_argument("--chip", type=preset_name, default="pcm", help="chip preset")
    demo.add_argument("--seed", type=SEED, default=0, help="seed of the training and of the chips")
    demo.add_argument("-o", "--output", default="xbarsim-demo", help="folder for the sweep store and plots")
    demo.set_defaults(func=cmd_demo)

    map_cmd = sub.add_parser("map", help="map a trained checkpoint onto a chip and save the chip file")
    map_cmd.add_argument("checkpoint", help="state_dict, xbarsim checkpoint, or (with --allow-pickle) a pickled module")
    map_cmd.add_argument("--model", help="zoo name (mlp, lenet5, vgg11, resnet18, lstm, gru) or package.module:Class")
    map_cmd.add_argument("--model-args", type=json_object, help="JSON object of the model's constructor arguments")
    map_cmd.add_argument("--chip", required=True, help="a preset name or a chip YAML/JSON file")
    map_cmd.add_argument("--layers", help="comma-separated module names to map (default: every supported layer)")
    map_cmd.add_argument("--seed", type=SEED, default=0, help="programming seed")
    map_cmd.add_argument("--allow-pickle", action="store_true", help="load a pickled module (only for files you trust)")
    map_cmd.add_argument("-o", "--output", required=True, help="chip file to write (HDF5)")
    map_cmd.set_defaults(func=cmd_map)

    eval_cmd = sub.add_parser("eval", help="test accuracy of a saved chip")
    eval_cmd.add_argument("chip_file", help="chip file written by `xbarsim map`")
    eval_cmd.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH or cifar10:PATH")
    eval_cmd.add_argument("--drift", type=parse_duration, help="evaluate at this time after programming (e.g. 1h, 1d, 1y)")
    eval_cmd.add_argument("--reprogram", type=SEED, metavar="SEED", help="program the chip again with this seed first")
    _model_arguments(eval_cmd, "the network class, when the chip file cannot rebuild it by itself")
    eval_cmd.add_argument("--batch-size", type=POSITIVE_INT, default=512, help="test images per forward")
    eval_cmd.set_defaults(func=cmd_eval)

    train_cmd = sub.add_parser("train", help="train a network, optionally with robustness options")
    train_cmd.add_argument("--model", required=True, help="zoo name (mlp, lenet5, vgg11, resnet18, lstm, gru) or package.module:Class")
    train_cmd.add_argument("--model-args", type=json_object, help="JSON object of constructor arguments (zoo defaults come from the data)")
    train_cmd.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH or cifar10:PATH")
    train_cmd.add_argument("--epochs", type=POSITIVE_INT, default=30, help="passes over the training split")
    train_cmd.add_argument("--lr", type=POSITIVE, default=2e-3, help="Adam learning rate")
    train_cmd.add_argument("--batch-size", type=POSITIVE_INT, default=64, help="training images per step")
    train_cmd.add_argument("--seed", type=SEED, default=0, help="seed of the weights, the batches and the noise")
    train_cmd.add_argument("--noisy", type=NON_NEGATIVE, default=0.0, metavar="SIGMA", help="noisy training: activation noise after every module")
    train_cmd.add_argument("--noise-mode", default="additive", choices=["additive", "multiplicative", "both"], help="how --noisy noise enters")
    train_cmd.add_argument("--qat", type=bounded(int, 2, 16), metavar="BITS", help="quantization-aware training with this many bits")
    train_cmd.add_argument("--scale", default="dynamic", help="QAT activation scale: dynamic or const:<max>")
    train_cmd.add_argument("--asymmetric", action="store_true", help="asymmetric QAT quantizers (default symmetric)")
    train_cmd.add_argument("--weight-noise", type=NON_NEGATIVE, default=0.0, metavar="ETA", help="Noisy Machines weight noise eta")
    train_cmd.add_argument("--bayesft", type=NON_NEGATIVE, default=0.0, metavar="SIGMA", help="BayesFT log-normal weight perturbation")
    train_cmd.add_argument("--gate-noise", type=NON_NEGATIVE, default=0.0, metavar="SIGMA", help="deep noise injection at RNN gates")
    train_cmd.add_argument("--gate-noise-relative", action="store_true", help="gate noise relative to the pre-activation std")
    train_cmd.add_argument("--distill", metavar="TEACHER", help="distil from this trained checkpoint")
    train_cmd.add_argument("--temperature", type=POSITIVE, default=4.0, help="distillation temperature")
    train_cmd.add_argument("--beta", type=FRACTION, default=0.5, help="weight of the distillation term")
    train_cmd.add_argument("--hwa", metavar="CHIP", help="hardware-aware training on this preset or chip YAML")
    train_cmd.add_argument("--allow-pickle", action="store_true", help="let --distill load a pickled module (trusted files only)")
    train_cmd.add_argument("-o", "--output", required=True, help="checkpoint to write")
    train_cmd.set_defaults(func=cmd_train)

    rob = sub.add_parser("robustness", help="accuracy vs one kind of noise, its midpoint level and a plot")
    rob.add_argument("checkpoint", help="trained checkpoint (xbarsim checkpoint or state_dict)")
    rob.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH or cifar10:PATH")
    rob.add_argument("--noise", default="activation",
                     help="what to sweep: activation (after modules), gate or gate:relative (RNN gate pre-activations), "
                          "weight (eta x each layer's weight range), bayesft (log-normal sigma on every parameter), "
                          "chip:PRESET or chip:FILE (the chip's device noise scale)")  # fmt: skip
    rob.add_argument("--sigmas", type=parse_sigmas, default="logspace(-2, 2, 17)",
                     help="noise levels (sigma, eta or scale): logspace(a, b, n) or a comma-separated list")  # fmt: skip
    rob.add_argument("--repeats", type=POSITIVE_INT, default=10, help="noise draws per noise level")
    rob.add_argument("--seed", type=SEED, default=0, help="noise seed: one seed, one curve")
    rob.add_argument("--mode", choices=["additive", "multiplicative", "both"], help="activation noise only (default additive)")
    rob.add_argument("--where", help="activation noise only: all (default), or comma-separated module names")
    _model_arguments(rob, "the model, for a plain state_dict")
    rob.add_argument("--allow-pickle", action="store_true", help="load a pickled module (trusted files only)")
    rob.add_argument("--plot", default="robustness.png", help="figure to write (.png or .pdf)")
    rob.set_defaults(func=cmd_robustness)

    cal = sub.add_parser("calibrate", help="calibrate a chip's converter ranges and drift reference from data; "
                         "prints what changed and the test accuracy before and after")  # fmt: skip
    cal.add_argument("chip_file", help="chip file written by `xbarsim map`")
    cal.add_argument("--data", default="digits", help="calibration inputs come from its train split, accuracy from its test split")
    cal.add_argument("--ranges", metavar="METHOD", choices=["absmax", "percentile", "mse"],
                     help="switch fixed converter ranges to calibrated ones and set them by METHOD: absmax, percentile "
                          "or mse (without it: percentile, for ranges that are already calibrated only)")  # fmt: skip
    cal.add_argument("--q", type=bounded(float, 0, 100, above=True), default=99.99, help="percentile of the percentile method")
    cal.add_argument("--samples", type=POSITIVE_INT, default=512, help="calibration inputs")
    cal.add_argument("--compensation", choices=["none", "global", "column"], help="switch drift compensation")
    cal.add_argument("--seed", type=SEED, default=0, help="seed of the draw of calibration inputs")
    _model_arguments(cal, "the network class, when the chip file cannot rebuild it by itself")
    cal.add_argument("-o", "--output", help="chip file to write (default: in place, atomically)")
    cal.set_defaults(func=cmd_calibrate)

    den = sub.add_parser("denoise", help="add denoising blocks where they raise the held-out accuracy, up to a target; "
                         "exits 1 without writing if the test accuracy would fall")  # fmt: skip
    den.add_argument("chip_file", help="chip file written by `xbarsim map`")
    den.add_argument("--data", default="digits", help="blocks train on its train split less a validation part; test split reported")
    den.add_argument("--target", type=FRACTION, required=True, help="validation accuracy at which to stop adding blocks, e.g. 0.98")
    den.add_argument("--max-blocks", type=POSITIVE_INT, help="keep at most this many blocks (default: one per analog layer)")
    den.add_argument("--validation", type=bounded(float, 0, 0.9, above=True), default=0.2,
                     help="fraction of the train split held out to accept blocks")  # fmt: skip
    den.add_argument("--epochs", type=POSITIVE_INT, default=5, help="training epochs after each added block")
    den.add_argument("--ratio", type=POSITIVE, default=0.25, help="block width as a fraction of the layer's channels")
    den.add_argument("--seed", type=SEED, default=0, help="seed of the validation draw, block initialization and data order")
    _model_arguments(den, "the network class, when the chip file cannot rebuild it by itself")
    den.add_argument("-o", "--output", help="chip file to write (default: in place, atomically)")
    den.set_defaults(func=cmd_denoise)

    from .sweeps.spec import DEFAULT_MAX_ROWS
    from .sweeps.store import CHECKPOINT_S

    sweep = sub.add_parser("sweep", help="evaluate a grid of chip configurations (resumable)")
    sweep.add_argument("spec", nargs="?", help="sweep spec (YAML or JSON); or use --example")
    sweep.add_argument("--example", metavar="NAME", help="run a spec shipped with xbarsim (list them: xbarsim examples)")
    sweep.add_argument("-o", "--output", required=True, help="results store (HDF5); re-running fills in what is missing")
    sweep.add_argument("--executor", default="processes", help="processes (default), serial, dask:local or tcp://host:8786")
    sweep.add_argument("--workers", type=POSITIVE_INT, help="worker processes (default: one per core)")
    sweep.add_argument("--retries", type=NON_NEGATIVE_INT, default=1, help="retries of a failing point before it is stored as failed")
    sweep.add_argument("--max-points", type=POSITIVE_INT, default=DEFAULT_MAX_ROWS, metavar="N",
                       help="refuse a spec of more than N (point, repeat) rows")
    sweep.add_argument("--checkpoint-every", type=bounded(float, 0), default=CHECKPOINT_S, metavar="SECONDS",
                       help="rewrite the HDF5 store whole this often while running "
                            "(the journal beside it holds every row as soon as it is done)")  # fmt: skip
    sweep.set_defaults(func=cmd_sweep)

    examples_cmd = sub.add_parser("examples", help="list the example sweep specs, or copy them into a folder")
    examples_cmd.add_argument("folder", nargs="?", help="copy every example here (default: only list them)")
    examples_cmd.add_argument("--force", action="store_true", help="overwrite example files already in the folder")
    examples_cmd.set_defaults(func=cmd_examples)

    report = sub.add_parser("report", help="table and plots of a sweep store")
    report.add_argument("store", help="results store written by `xbarsim sweep`")
    report.add_argument("--plot", help="figure path (.png or .pdf; default next to the store)")
    report.add_argument("--csv", help="also export every row as CSV")
    report.set_defaults(func=cmd_report)
    _finish_commands(parser)
    return parser


class _Parser(argparse.ArgumentParser):
    """Reports a bad option in one line (no usage block), exit status 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless it has none (None or an off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.help is None or any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS)):
            return action.help or ""
        return super()._get_help_string(action)


def _finish_commands(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command shows its defaults and takes ``--debug`` after its name too."""
    parser.formatter_class = _HelpFormatter
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subcommands:
        for child in set(action.choices.values()):
            _finish_commands(child)
    if not subcommands:
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show the full traceback of an error")


# command: (its input files, the files it writes, the folders it writes); an output may not be an input
_FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "map": (("checkpoint", "chip"), ("output",), ()),
    "train": (("distill", "hwa"), ("output",), ()),
    "robustness": (("checkpoint",), ("plot",), ()),
    "calibrate": ((), ("output",), ()),  # -o may be the chip file itself: that is the in-place default
    "denoise": ((), ("output",), ()),
    "sweep": (("spec",), ("output",), ()),
    "report": (("store",), ("plot", "csv"), ()),
    "bench": ((), ("output",), ()),
    "demo": ((), (), ("output",)),
}


def check_outputs(outputs: dict[str, str | Path | None], inputs: list[str | Path | None],
                  folders: bool = False) -> None:  # fmt: skip
    """Refuse, before any work, an output that is one of the inputs (the same file, by any path) or
    that cannot be written where it is: below a regular file, or a folder where a file goes (or the reverse)."""
    existing = [Path(i) for i in inputs if i is not None and Path(i).is_file()]
    for option, output in outputs.items():
        if output is None:
            continue
        path = Path(output)
        clash = next((i for i in existing if path.exists() and os.path.samefile(path, i)), None)
        if clash is not None:
            raise XbarsimError(f"{option} {path}: this is also an input ({clash}); writing it would destroy that input")
        if folders and path.exists() and not path.is_dir():
            raise XbarsimError(f"{option} {path}: is a file, not a folder")
        if not folders and path.is_dir():
            raise XbarsimError(f"{option} {path}: is a folder; give a file name")
        ancestor = (path if folders else path.parent).absolute()
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise XbarsimError(f"{option} {path}: cannot create its folder: {ancestor} is a file, not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise XbarsimError(f"{option} {path}: cannot write in {ancestor} (permission denied)")


_REQUIRED_INPUTS = ("checkpoint", "chip_file", "spec", "store")
"""Positional file arguments: checked before any work, so a typo costs nothing."""


def _check_files(args: argparse.Namespace) -> None:
    for name in _REQUIRED_INPUTS:
        path = getattr(args, name, None)
        if path is not None and Path(path).is_dir():
            raise XbarsimError(f"{path}: is a folder, not a file")
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
    inputs, outputs, folders = _FILES.get(args.command, ((), (), ()))
    given = [getattr(args, name, None) for name in inputs]
    check_outputs({_option(name): getattr(args, name, None) for name in outputs}, given)
    check_outputs({_option(name): getattr(args, name, None) for name in folders}, given, folders=True)


def _option(dest: str) -> str:
    return "-o" if dest == "output" else "--" + dest.replace("_", "-")


def _error_lines(exc: BaseException) -> list[str]:
    """What to tell the user: the message, one line per problem, never a huge echo."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        from .configfile import format_validation_error

        text = format_validation_error(exc)
    elif isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror}"
    elif isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
    lines = text.splitlines() if isinstance(exc, XbarsimError) else [text]
    lines = [" ".join(line.split()) for line in lines if line.strip()]
    return [line if len(line) <= 500 else line[:499] + "…" for line in lines] or [type(exc).__name__]


_INPUT_ERRORS = (XbarsimError, ValueError, KeyError, OSError)
"""Bad input, reported in one line: our own errors, and what the standard library raises for missing,
unreadable or malformed files and values. Anything else is a bug and keeps its traceback."""


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (2 for bad input, reported on stderr in one line)."""
    args = build_parser().parse_args(argv)
    try:
        _check_files(args)
        return args.func(args)
    except _INPUT_ERRORS as exc:
        if args.debug:
            raise
        for line in _error_lines(exc):
            print(f"xbarsim {args.command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
