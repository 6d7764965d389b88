"""The ``xbarsim`` command line."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib import metadata
from pathlib import Path


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
    print(f"numba threads: {numba.config.NUMBA_NUM_THREADS} (of {os.cpu_count()} CPUs), "
          f"threading layer: {numba.config.THREADING_LAYER}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")  # fmt: skip
    print("presets (ChipConfig.preset(name), or `preset: name` in a chip YAML):")
    for name, preset in PRESETS.items():
        print(f"  {name:<9} {preset['description']}")
    return 0


def cmd_bench_tile(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .bench import tile

    cases = tuple(tile.CASES) if not args.case else tuple(args.case)
    unknown = [c for c in cases if c not in tile.CASES]
    if unknown:
        print(f"unknown case(s) {unknown}; choose from: {list(tile.CASES)}", file=sys.stderr)
        return 2
    total = len(cases) * len(args.tiles) * len(args.batches)
    with tqdm(total=total, desc="bench tile", unit="case", file=sys.stderr) as bar:
        rows = tile.run(args.size, tuple(args.tiles), tuple(args.batches), cases, args.seconds, progress=lambda _: bar.update())
    print(tile.format_table(rows))
    tile.write_json(rows, Path(args.output))
    print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xbarsim", description="Simulate analog in-memory-computing chips.")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="versions, Numba threads and the chip presets")
    info.set_defaults(func=cmd_info)

    bench = sub.add_parser("bench", help="throughput benchmarks against a clean float32 GEMM")
    bench_sub = bench.add_subparsers(dest="target", required=True)
    bench_tile = bench_sub.add_parser("tile", help="MVMs per second of one tiled weight matrix")
    bench_tile.add_argument("--size", type=int, default=512, help="weight matrix is size x size (default 512)")
    bench_tile.add_argument("--tiles", type=int, nargs="+", default=[256, 512], help="tile sizes (default 256 512)")
    bench_tile.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256], help="batch sizes (default 1 32 256)")
    bench_tile.add_argument("--case", action="append", help="run only this case (repeatable); default all")
    bench_tile.add_argument("--seconds", type=float, default=0.3, help="minimum timed seconds per measurement")
    bench_tile.add_argument("-o", "--output", default="bench-results/tile.json", help="JSON file for the results")
    bench_tile.set_defaults(func=cmd_bench_tile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
