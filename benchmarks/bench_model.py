"""Whole-network throughput on a chip against torch float32: the same as ``xbarsim bench model``."""

import sys

from xbarsim.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", "model", *sys.argv[1:]]))
