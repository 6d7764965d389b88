"""The throughput benchmarks: bench tile and bench model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..bench.workloads import DEFAULT_MODELS
from .args import BATCH, bounded, device_arguments, device_of, preset_name


def cmd_bench_tile(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..bench import tile

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

    from ..bench import model
    from ..bench.workloads import MODELS

    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        print(f"unknown model(s) {unknown}; choose from: {list(MODELS)}", file=sys.stderr)
        return 2
    device_of(args.device)  # a device this machine lacks is refused before any run
    total = sum(len(args.lstm_batches) if m == "lstm" else 1 for m in args.models)
    with tqdm(total=total, desc="bench model", unit="run", file=sys.stderr) as bar:
        result = model.run(tuple(args.models), args.chip, args.batch, tuple(args.lstm_batches), args.seconds,
                           args.import_order, progress=lambda _: bar.update(), device=args.device, backend=args.backend)  # fmt: skip
    print(model.format_table(result))
    model.write_json(result, Path(args.output), args.import_order)
    print(f"wrote {args.output}")
    return 0



def add_bench(sub: argparse._SubParsersAction) -> None:
    """``xbarsim bench tile`` and ``xbarsim bench model``."""
    bench = sub.add_parser("bench", help="throughput benchmarks: tiles against a float32 GEMM, networks against torch")
    bench_sub = bench.add_subparsers(dest="target", required=True)
    order_help = "import torch before xbarsim in the timed processes (as in a user's script), or after"
    bench_tile = bench_sub.add_parser("tile", help="MVMs per second of one tiled weight matrix, cold and warm")
    bench_tile.add_argument("--size", type=bounded(int, 1, 16384), default=512, help="weight matrix is size x size")
    bench_tile.add_argument("--tiles", type=bounded(int, 1, 65536), nargs="+", default=[256, 512], help="tile sizes")
    bench_tile.add_argument("--batches", type=BATCH, nargs="+", default=[1, 32, 256], help="batch sizes")
    bench_tile.add_argument("--case", action="append", help="run only this case (repeatable); default all")
    bench_tile.add_argument("--seconds", type=bounded(float, 0, 3600), default=0.3, help="minimum timed seconds per measurement (0: the minimum of 3 rounds)")
    bench_tile.add_argument("--import-order", choices=["torch", "xbarsim"], default="torch", help=order_help)
    bench_tile.add_argument("-o", "--output", default="bench-results/tile.json", help="JSON file for the results")
    bench_tile.set_defaults(func=cmd_bench_tile)
    bench_model = bench_sub.add_parser("model", help="networks on a chip vs torch alone in its own process, cold and warm")
    bench_model.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                             help="networks to time (lstm: 2x256, 50 steps; vit: 4 layers of 128 on 3x32x32 images, --batch "
                                  "of them; chargpt: 4 layers of 128, 32 sequences of 128 characters)")  # fmt: skip
    bench_model.add_argument("--chip", type=preset_name, default="pcm", help="chip preset")
    bench_model.add_argument("--batch", type=BATCH, default=64, help="images per forward for the CNNs and the ViT")
    bench_model.add_argument("--lstm-batches", type=BATCH, nargs="+", default=[32, 1], help="sequences per forward for the LSTM")
    bench_model.add_argument("--seconds", type=bounded(float, 0, 3600), default=3.0, help="minimum warm seconds timed per network (0: the minimum of 3 rounds)")
    bench_model.add_argument("--import-order", choices=["torch", "xbarsim"], default="torch", help=order_help)
    device_arguments(bench_model, "the chip and the torch baseline")
    bench_model.add_argument("-o", "--output", default="bench-results/model.json", help="JSON file for the results")
    bench_model.set_defaults(func=cmd_bench_model)
