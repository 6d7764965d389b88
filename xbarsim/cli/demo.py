"""The demo and the shipped example sweep specs: demo and examples."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import EPOCHS, REPEATS, SEED, preset_name


def cmd_demo(args: argparse.Namespace) -> int:
    from .. import demo

    rows, summary, files = demo.run(epochs=args.epochs, chips=args.chips, preset=args.chip, seed=args.seed, output=Path(args.output))
    print(summary)
    print()
    print(demo.format_table(rows, args.chips, args.chip))
    from ..sweeps.report import format_report
    from ..sweeps.store import read_results

    print()
    print(format_report(read_results(files[0])))
    print("files: " + ", ".join(str(f) for f in files))
    return 0



def cmd_examples(args: argparse.Namespace) -> int:
    from .. import examples

    if args.folder is None:
        for name in examples.names():
            print(f"{name:<20} {examples.summary(name)}")
        print("run one: xbarsim sweep --example NAME -o results.h5; copy them to edit: xbarsim examples FOLDER")
        return 0
    for path in examples.copy_to(args.folder, args.force):
        print(f"wrote {path}")
    return 0



def add_demo(sub: argparse._SubParsersAction) -> None:
    """``xbarsim demo``."""
    demo = sub.add_parser("demo", help="LeNet-5 on digits: accuracy in float, on an ideal chip, on PCM chips over time")
    demo.add_argument("--epochs", type=EPOCHS, default=40, help="training epochs")
    demo.add_argument("--chips", type=REPEATS, default=5, help="chips programmed per point")
    demo.add_argument("--chip", type=preset_name, default="pcm", help="chip preset")
    demo.add_argument("--seed", type=SEED, default=0, help="seed of the training and of the chips")
    demo.add_argument("-o", "--output", default="xbarsim-demo", help="folder for the sweep store and plots")
    demo.set_defaults(func=cmd_demo)


def add_examples(sub: argparse._SubParsersAction) -> None:
    """``xbarsim examples``."""
    examples_cmd = sub.add_parser("examples", help="list the example sweep specs, or copy them into a folder")
    examples_cmd.add_argument("folder", nargs="?", help="copy every example here (default: only list them)")
    examples_cmd.add_argument("--force", action="store_true", help="overwrite example files already in the folder")
    examples_cmd.set_defaults(func=cmd_examples)
