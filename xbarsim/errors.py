"""The project's own error type: bad input that the command line reports in one line."""

from __future__ import annotations


class XbarsimError(ValueError):
    """A problem with the user's input (a config, a file, an option): the message names it.

    The command line prints the message alone and exits 2; anything else is a bug and keeps its traceback.
    """
