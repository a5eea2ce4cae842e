"""``syncd``: the command line. Every command takes ``--config PATH``.

One module per command group (``resync``, ``targets``, ``status``, ``check``,
``deletions``, ``pause``, ``outbox``, ``migrate``, ``run``, ``demo``), each
adding its own subcommand to the parser in ``app``; none runs SQL (the store
does). ``syncd.cli:main`` is the console entry point.
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Sequence

from syncd.cli import app
from syncd.cli.app import build_parser
from syncd.cli.command import EXIT_ATTENTION, EXIT_CONFIG, EXIT_FAIL, EXIT_OK, EXIT_PIPE, EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. A reader of its output that went away (``syncd status |
    head -3``) ends it quietly with ``EXIT_PIPE``, as SIGPIPE ends other tools
    (Python ignores SIGPIPE, so it would be a traceback)."""
    try:
        code = app.main(argv)
        sys.stdout.flush()  # a pipe is block-buffered: the rest is written here
        return code
    except BrokenPipeError:
        if not _stdout_reader_gone():  # some other pipe or socket: not ours to hide
            raise
        # the interpreter flushes stdout once more at exit: let that go nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE


def _stdout_reader_gone() -> bool:
    """Is stdout a pipe whose reading end is closed? (poll reports POLLERR)"""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


__all__ = [
    "EXIT_ATTENTION",
    "EXIT_CONFIG",
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]
