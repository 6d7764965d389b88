"""Tile throughput benchmark: the same as ``xbarsim bench tile`` (pass its options)."""

import sys

from xbarsim.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", "tile", *sys.argv[1:]]))
