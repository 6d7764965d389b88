"""The ``xbarsim`` command line: ``main`` and the parser, assembled from one module per command group.

Bad input (an option, a file, a config) gets one line on stderr naming it, and exit status 2;
``xbarsim --debug COMMAND ...`` (or ``--debug`` after the command) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import XbarsimError
from .args import (
    FRACTION,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    bounded,
    parse_duration,
    parse_sigmas,
)
from .bench import add_bench
from .chip import add_calibrate, add_denoise, add_eval, add_info, add_map
from .cost import add_cost
from .demo import add_demo, add_examples
from .files import check_files, check_outputs
from .sweeps import _sweep_spec_file, add_report, add_sweep
from .training import add_robustness, add_train

__all__ = ["FRACTION", "NON_NEGATIVE", "NON_NEGATIVE_INT", "POSITIVE", "POSITIVE_INT", "SEED", "_sweep_spec_file", "bounded",
           "build_parser", "check_outputs", "main", "parse_duration", "parse_sigmas"]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="xbarsim", description="Simulate analog in-memory-computing chips.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_info, add_bench, add_demo, add_map, add_eval, add_cost, add_train, add_robustness, add_calibrate, add_denoise,
                add_sweep, add_examples, add_report):
        add(sub)
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


def _error_lines(exc: BaseException) -> list[str]:
    """What to tell the user: the message, one line per problem, never a huge echo."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        from ..configfile import format_validation_error

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
        check_files(args)
        return args.func(args)
    except _INPUT_ERRORS as exc:
        if args.debug:
            raise
        for line in _error_lines(exc):
            print(f"xbarsim {args.command}: error: {line}", file=sys.stderr)
        return 2

