"""corrlab's user-facing errors.

A :class:`CorrlabError` says what is wrong with something the user gave (data, weights, a
checkpoint, a configuration value) and how to fix it. The ``corrlab`` command prints it as one
``corrlab: error: ...`` message and exits with status 2; set ``CORRLAB_TRACEBACK=1`` (or pass
``--traceback``) to see the traceback too. Every other exception is a bug and keeps its
traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class CorrlabError(Exception):
    """Base class of the errors above."""


class ConfigError(CorrlabError, ValueError):
    """A configuration value that cannot work (named in the message)."""


def traceback_requested() -> bool:
    """``CORRLAB_TRACEBACK`` set to anything but empty or 0."""
    return os.environ.get("CORRLAB_TRACEBACK", "") not in ("", "0")


def report_errors(run: Callable[[], int | None], prog: str = "corrlab") -> int:
    """Run a command; a :class:`CorrlabError` becomes ``<prog>: error: <message>`` on stderr
    and exit status 2 (re-raised with its traceback when :func:`traceback_requested`)."""
    try:
        return run() or 0
    except CorrlabError as error:
        if traceback_requested():
            raise
        print(f"{prog}: error: {error}\n(set CORRLAB_TRACEBACK=1 or pass --traceback for the "
              "traceback)", file=sys.stderr)
        return 2
