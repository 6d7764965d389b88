"""``xbarsim cost``: counts, energy, latency and area of one inference on a saved chip."""

from __future__ import annotations

import argparse
import dataclasses
import json

from .args import SAMPLES, model_arguments
from .chip import load_chip_file


def cmd_cost(args: argparse.Namespace) -> int:
    from ..mapping.cost import format_cost, measure_cost
    from ..models import data

    model = load_chip_file(args)
    split = data.load(args.data)
    x = split.x_test[: args.samples]
    cost = measure_cost(model, x)
    cfg = model.chip.cfg
    if args.json:
        layers = [dataclasses.asdict(layer) for layer in cost.layers]
        print(json.dumps({"chip_file": str(args.chip_file), "chip": cfg.name, "data": split.name, "samples": cost.samples,
                          "cost_table": cfg.cost.model_dump(), "layers": layers, "digital_macs": cost.digital_macs,
                          "totals": cost.totals()}, indent=2))  # fmt: skip
        return 0
    print(f"{args.chip_file}: chip '{cfg.name}', tiles {cfg.tile.rows}x{cfg.tile.cols}, ADC {cfg.tile.adc.bits or 'ideal'} bits, "
          f"DAC {cfg.tile.dac.bits or 'ideal'} bits; per inference, measured on {cost.samples} {split.name} test inputs")  # fmt: skip
    print(format_cost(cost))
    print(f"costs: {cfg.cost.source} ({cfg.cost.technology_nm:g} nm); replace any with `cost:` in a chip YAML (docs/cost.md)")
    return 0


def add_cost(sub: argparse._SubParsersAction) -> None:
    """``xbarsim cost``."""
    cost = sub.add_parser("cost", help="per layer and in total: tiles, MVMs, DAC/ADC conversions, tile reads, "
                          "bound-management re-reads, energy, latency and area of one inference")  # fmt: skip
    cost.add_argument("chip_file", help="chip file written by `xbarsim map`")
    cost.add_argument("--data", default="digits", help="inputs that are run to count MVMs and re-reads: digits, synthetic, "
                      "mnist:PATH, cifar10:PATH, pydoc or text:PATH (their test split)")  # fmt: skip
    cost.add_argument("--samples", type=SAMPLES, default=64, help="test inputs run (re-reads are their mean per inference)")
    model_arguments(cost, "the network class, when the chip file cannot rebuild it by itself")
    cost.add_argument("--json", action="store_true", help="print the counts, costs and cost table as JSON instead of a table")
    cost.set_defaults(func=cmd_cost)
