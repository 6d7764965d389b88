"""The project's own error type: bad input that the command line reports in one line."""

from __future__ import annotations

from typing import Any

import numpy as np


class XbarsimError(ValueError):
    """A problem with the user's input (a config, a file, an option): the message names it.

    The command line prints the message alone and exits 2; anything else is a bug and keeps its traceback.
    """


def shown(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut to 60 characters ."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."
