"""The chip commands: info, map, eval, calibrate and denoise."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib import metadata

from .args import (
    BATCH,
    EPOCHS,
    FRACTION,
    SAMPLES,
    SEED,
    bounded,
    device_arguments,
    load_chip_config,
    model_arguments,
    parse_duration,
    user_model,
)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cmd_info(args: argparse.Namespace) -> int:
    import numba

    from ..presets import PRESET_SOURCES, PRESETS

    print(f"xbarsim {_version('xbarsim')}  (python {platform.python_version()}, {platform.machine()})")
    for package in ("numpy", "numba", "llvmlite", "scipy", "pydantic", "h5py", "torch"):
        print(f"  {package:<10} {_version(package)}")
    from ..crossbar.threads import apply_policy

    print(f"numba threads: {numba.config.NUMBA_NUM_THREADS} (of {os.cpu_count()} CPUs), threading layer: {apply_policy()}")
    print("presets (ChipConfig.preset(name), or `preset: name` in a chip YAML):")
    for name, preset in PRESETS.items():
        print(f"  {name:<9} {preset['description']}")
        for field_name, source in PRESET_SOURCES.get(name, {}).items():
            print(f"      {field_name}: {source}")
    return 0



def cmd_map(args: argparse.Namespace) -> int:
    from ..mapping.chip import map_model
    from ..models.checkpoint import load_network

    cfg = load_chip_config(args.chip)
    network = load_network(args.checkpoint, user_model(args.model, args.model_args), allow_pickle=args.allow_pickle)
    layers = args.layers.split(",") if args.layers else None
    chip = map_model(network, cfg, seed=args.seed, layers=layers)
    chip.save(args.output)
    print(chip.summary())
    print(f"wrote {args.output}")
    return 0



def load_chip_file(args: argparse.Namespace):
    """The command's chip file, on --device with --backend when the command has them; its network from
    --model/--model-args when given (the user's code, never the file's)."""
    from ..mapping.chipload import load_chip

    return load_chip(args.chip_file, user_model(args.model, args.model_args), device=getattr(args, "device", None),
                     backend=getattr(args, "backend", None))  # fmt: skip


def cmd_eval(args: argparse.Namespace) -> int:
    from ..models import data
    from ..models.training import accuracy, bits_per_character

    chip = load_chip_file(args)
    if args.reprogram is not None:
        chip.program(args.reprogram)
    if args.drift is not None:
        chip.drift(args.drift)
    split = data.load(args.data)
    backend = chip.chip.backend
    where = f"chip '{chip.chip.cfg.name}', t = {chip.chip.t_s:g} s, {backend.name} on {backend.device}"
    if split.metric == "bpc":
        bpc = bits_per_character(chip, split.x_test, split.y_test, args.batch_size)
        acc = accuracy(chip, split.x_test, split.y_test, args.batch_size)
        print(f"{args.chip_file}: {split.name} test {bpc:.4f} bits per character, next-character accuracy {100 * acc:.2f}% "
              f"({split.y_test.numel():,} characters, {where})")  # fmt: skip
        return 0
    acc = accuracy(chip, split.x_test, split.y_test, args.batch_size)
    print(f"{args.chip_file}: {split.name} test accuracy {100 * acc:.2f}% ({len(split.y_test)} samples, {where})")
    return 0



def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..calibration.calibrate import calibrate_chip, format_report
    from ..models import data

    model = load_chip_file(args)
    split = data.load(args.data)
    held = data.hold_out(split, args.validation, args.seed)
    x = held.x_train[torch_randperm(len(held.x_train), args.seed)[: args.samples]]
    print(f"{args.chip_file}: chip '{model.chip.cfg.name}', t = {model.chip.t_s:g} s; calibration inputs: {len(x)} "
          f"{split.name} train samples (seed {args.seed}); {len(held.y_test)} other train samples held out for validation decide "
          f"what is kept; accuracy measured on the {len(split.y_test)} test samples")  # fmt: skip
    report = calibrate_chip(model, x, (held.x_test, held.y_test), split.x_test, split.y_test, args.ranges, args.q, args.compensation,
                            progress=True)  # fmt: skip
    print(format_report(report, f"{split.name} test"))
    output = args.chip_file if args.in_place else args.output
    if report.fell:
        print(f"xbarsim calibrate: NOT SAVED: the calibration kept on validation lowers the test accuracy "
              f"({100 * report.accuracy_before:.2f}% -> {100 * report.accuracy_after:.2f}%); {output} was not written. "
              f"Try more --samples, another --ranges method or --q.", file=sys.stderr)  # fmt: skip
        return 1
    if not report.changed and args.in_place:
        print(f"{args.chip_file} left unchanged")
        return 0
    model.save(output)
    print(f"wrote {output}")
    return 0


def torch_randperm(n: int, seed: int):
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def cmd_denoise(args: argparse.Namespace) -> int:
    from ..calibration.denoise import denoise, format_result
    from ..models import data

    model = load_chip_file(args)
    split = data.load(args.data)
    result = denoise(model, split, args.target, args.max_blocks, args.epochs, args.ratio, args.seed, validation=args.validation)
    print(format_result(result, f"{split.name} test"))
    output = args.chip_file if args.in_place else args.output
    if result.final_accuracy < result.baseline_accuracy:
        print(f"xbarsim denoise: NOT SAVED: the blocks kept on validation lower the test accuracy "
              f"({100 * result.baseline_accuracy:.2f}% -> {100 * result.final_accuracy:.2f}%); {output} was not written. "
              f"Try more --epochs, another --seed or a lower --ratio.", file=sys.stderr)  # fmt: skip
        return 1
    if not result.steps and args.in_place:
        print(f"no block kept: {args.chip_file} left unchanged")
        return 0
    model.save(output)
    print(f"wrote {output}")
    return 0



def add_info(sub: argparse._SubParsersAction) -> None:
    """``xbarsim info``."""
    info = sub.add_parser("info", help="versions, Numba threads and the chip presets")
    info.set_defaults(func=cmd_info)


def add_map(sub: argparse._SubParsersAction) -> None:
    """``xbarsim map``."""
    map_cmd = sub.add_parser("map", help="map a trained checkpoint onto a chip and save the chip file")
    map_cmd.add_argument("checkpoint", help="state_dict, xbarsim checkpoint, or (with --allow-pickle) a pickled module")
    model_arguments(map_cmd, "the network, for a plain state_dict (or instead of the checkpoint's)")
    map_cmd.add_argument("--chip", required=True, help="a preset name or a chip YAML/JSON file")
    map_cmd.add_argument("--layers", help="comma-separated module names to map (default: every supported layer)")
    map_cmd.add_argument("--seed", type=SEED, default=0, help="programming seed")
    map_cmd.add_argument("--allow-pickle", action="store_true", help="load a pickled module (only for files you trust)")
    map_cmd.add_argument("-o", "--output", required=True, help="chip file to write (HDF5)")
    map_cmd.set_defaults(func=cmd_map)


def add_eval(sub: argparse._SubParsersAction) -> None:
    """``xbarsim eval``."""
    eval_cmd = sub.add_parser("eval", help="test accuracy of a saved chip")
    eval_cmd.add_argument("chip_file", help="chip file written by `xbarsim map`")
    eval_cmd.add_argument("--data", default="digits", help="digits, synthetic, mnist:PATH, cifar10:PATH, pydoc or text:PATH "
                          "(text: bits per character)")
    eval_cmd.add_argument("--drift", type=parse_duration, help="evaluate at this time after programming (e.g. 1h, 1d, 1y)")
    eval_cmd.add_argument("--reprogram", type=SEED, metavar="SEED", help="program the chip again with this seed first")
    model_arguments(eval_cmd, "the network class, when the chip file cannot rebuild it by itself")
    eval_cmd.add_argument("--batch-size", type=BATCH, default=512, help="test images per forward")
    device_arguments(eval_cmd, "the chip")
    eval_cmd.set_defaults(func=cmd_eval)


def add_calibrate(sub: argparse._SubParsersAction) -> None:
    """``xbarsim calibrate``."""
    cal = sub.add_parser("calibrate", help="calibrate a chip's converter ranges and drift reference from data, keeping what "
                         "does not lower the validation accuracy; exits 1 without writing if the test accuracy would fall")  # fmt: skip
    cal.add_argument("chip_file", help="chip file written by `xbarsim map`")
    cal.add_argument("--data", default="digits", help="calibration inputs come from its train split, accuracy from its test split")
    cal.add_argument("--ranges", metavar="METHOD", choices=["absmax", "percentile", "mse"],
                     help="switch fixed converter ranges to calibrated ones and set them by METHOD: absmax, percentile "
                          "or mse (without it: percentile, for ranges that are already calibrated only)")  # fmt: skip
    cal.add_argument("--q", type=bounded(float, 0, 100, above=True), default=99.99, help="percentile of the percentile method")
    cal.add_argument("--samples", type=SAMPLES, default=512, help="calibration inputs")
    cal.add_argument("--validation", type=bounded(float, 0, 0.9, above=True), default=0.2,
                     help="fraction of the train split held out to decide which new bounds and switches are kept")  # fmt: skip
    cal.add_argument("--compensation", choices=["none", "global", "column"], help="switch drift compensation")
    cal.add_argument("--seed", type=SEED, default=0, help="seed of the validation draw and of the draw of calibration inputs")
    model_arguments(cal, "the network class, when the chip file cannot rebuild it by itself")
    device_arguments(cal, "the chip")
    _output_or_in_place(cal)
    cal.set_defaults(func=cmd_calibrate)


def add_denoise(sub: argparse._SubParsersAction) -> None:
    """``xbarsim denoise``."""
    den = sub.add_parser("denoise", help="add denoising blocks where they raise the held-out accuracy, up to a target; "
                         "exits 1 without writing if the test accuracy would fall")  # fmt: skip
    den.add_argument("chip_file", help="chip file written by `xbarsim map`")
    den.add_argument("--data", default="digits", help="blocks train on its train split less a validation part; test split reported")
    den.add_argument("--target", type=FRACTION,
                     help="validation accuracy at which to stop adding blocks, e.g. 0.98 (default: the validation accuracy "
                          "with every layer exact, less 0.02)")  # fmt: skip
    den.add_argument("--max-blocks", type=bounded(int, 1, 1000), help="keep at most this many blocks (default: one per analog layer)")
    den.add_argument("--validation", type=bounded(float, 0, 0.9, above=True), default=0.2,
                     help="fraction of the train split held out to accept blocks")  # fmt: skip
    den.add_argument("--epochs", type=EPOCHS, default=5, help="training epochs after each added block")
    den.add_argument("--ratio", type=bounded(float, 0, 4, above=True), default=0.25,
                     help="block width as a fraction of the layer's channels")  # fmt: skip
    den.add_argument("--seed", type=SEED, default=0, help="seed of the validation draw, block initialization and data order")
    model_arguments(den, "the network class, when the chip file cannot rebuild it by itself")
    _output_or_in_place(den)
    den.set_defaults(func=cmd_denoise)


def _output_or_in_place(parser: argparse.ArgumentParser) -> None:
    """``-o FILE`` (never the chip file itself, by any path) or ``--in-place``: one of them, said explicitly."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--output", help="chip file to write; not the input chip file (see --in-place)")
    where.add_argument("--in-place", action="store_true", help="replace the input chip file itself (atomically)")
