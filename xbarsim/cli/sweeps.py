"""Sweeps over chip configurations and their reports: sweep and report."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import POSITIVE_INT, WORK, bounded, device_arguments
from .files import check_outputs, input_files


def _sweep_spec_file(args: argparse.Namespace) -> str | Path:
    """The spec file a sweep runs: the positional SPEC, or the shipped example --example names."""
    from .. import examples

    if (args.spec is None) == (args.example is None):
        raise ValueError("give a sweep spec file or --example NAME (one of them); `xbarsim examples` lists the examples")
    return args.spec if args.example is None else examples.path(args.example)



def cmd_sweep(args: argparse.Namespace) -> int:
    from ..sweeps.report import format_report
    from ..sweeps.runner import run_sweep
    from ..sweeps.spec import SweepSpec
    from ..sweeps.store import read_results

    spec_file = _sweep_spec_file(args)
    spec = SweepSpec.from_file(spec_file)
    named = [spec_file, spec.model.checkpoint, spec.chip if isinstance(spec.chip, str) else None, spec.model.train.get("hwa")]
    check_outputs({"-o": args.output}, [*named, *input_files("data", spec.data)])
    store = run_sweep(spec, args.output, args.executor, args.workers, args.retries, max_rows=args.max_points,
                      checkpoint_s=args.checkpoint_every, max_work=args.max_work, device=args.device, backend=args.backend)  # fmt: skip
    print(format_report(read_results(store.path)))
    print(f"wrote {store.path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..sweeps.plots import plot_sweep
    from ..sweeps.report import format_report
    from ..sweeps.store import read_results

    results = read_results(args.store)
    print(format_report(results))
    if len(results.columns["point_id"]) == 0:
        return 0  # nothing to plot yet
    for path in plot_sweep(results, args.plot or Path(args.store).with_suffix(".png")):
        print(f"wrote {path}")
    if args.csv:
        print(f"wrote {results.to_csv(args.csv)}")
    return 0



def add_sweep(sub: argparse._SubParsersAction) -> None:
    """``xbarsim sweep``."""
    from ..limits import DEFAULT_MAX_WORK
    from ..sweeps.spec import DEFAULT_MAX_ROWS
    from ..sweeps.store import CHECKPOINT_S

    sweep = sub.add_parser("sweep", help="evaluate a grid of chip configurations (resumable)")
    sweep.add_argument("spec", nargs="?", help="sweep spec (YAML or JSON); or use --example")
    sweep.add_argument("--example", metavar="NAME", help="run a spec shipped with xbarsim (list them: xbarsim examples)")
    sweep.add_argument("-o", "--output", required=True, help="results store (HDF5); re-running fills in what is missing")
    sweep.add_argument("--executor", default="processes", help="processes (default), serial, dask:local or tcp://host:8786")
    sweep.add_argument("--workers", type=bounded(int, 1, 1024), help="worker processes (default: one per core; with --device cuda one per GPU)")
    sweep.add_argument("--retries", type=bounded(int, 0, 100), default=1, help="retries of a failing point before it is stored as failed")
    sweep.add_argument("--max-points", type=POSITIVE_INT, default=DEFAULT_MAX_ROWS, metavar="N",
                       help="refuse a spec of more than N (point, repeat) rows")
    sweep.add_argument("--max-work", type=WORK, default=DEFAULT_MAX_WORK, metavar="N",
                       help="refuse a spec that asks for more than N network evaluations (rows x test samples, "
                            "plus 3 x epochs x train samples for a zoo model's training), before anything runs")  # fmt: skip
    sweep.add_argument("--checkpoint-every", type=bounded(float, 0), default=CHECKPOINT_S, metavar="SECONDS",
                       help="rewrite the HDF5 store whole this often while running "
                            "(the journal beside it holds every row as soon as it is done)")  # fmt: skip
    device_arguments(sweep, "the chips (cuda: one worker per GPU)")
    sweep.set_defaults(func=cmd_sweep)


def add_report(sub: argparse._SubParsersAction) -> None:
    """``xbarsim report``."""
    report = sub.add_parser("report", help="table and plots of a sweep store")
    report.add_argument("store", help="results store written by `xbarsim sweep`")
    report.add_argument("--plot", help="figure path (.png or .pdf; default next to the store)")
    report.add_argument("--csv", help="also export every row as CSV")
    report.set_defaults(func=cmd_report)
