"""What every command shares: its exit codes, and how it joins the parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

from syncd.config import Config

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3
#: the command finished, but not everything it was asked to do was done and the admin
#: should look (`resync`: targets another replica leases were skipped; see --wait)
EXIT_ATTENTION = 4
#: the reader of the command's output went away (``syncd status | head``): 128 + SIGPIPE,
#: what a shell reports for a tool that SIGPIPE ended
EXIT_PIPE = 141


def duration_arg(value: str) -> float:
    """An argparse ``type``: ``"7d"``, ``"15m"``, … in seconds, with its unit
    (a bare ``7`` would be seconds, rarely what was meant); a bad one is a
    usage error that names the option (not a traceback)."""
    from syncd.timeutil import parse_duration

    if value.strip().replace(".", "", 1).isdigit():
        raise argparse.ArgumentTypeError(
            f"{value!r} needs a unit (e.g. '{value.strip()}d', '{value.strip()}h')"
        )
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(value: str) -> int:
    """An argparse ``type``: a whole number of at least 1."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


#: a command: the loaded config and its parsed arguments in, an exit code out
Handler = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]
#: ``add(name, help)``: a subcommand's parser (with ``--config``) for its module to fill
AddCommand = Callable[[str, str], argparse.ArgumentParser]
