"""``syncd``: the command line. Every command takes ``--config PATH``.

One module per command group (``resync``, ``targets``, ``status``, ``check``,
``deletions``, ``pause``, ``outbox``, ``migrate``, ``run``, ``demo``), each
adding its own subcommand to the parser in ``app``; none runs SQL (the store
does). ``syncd.cli:main`` is the console entry point.
"""

from __future__ import annotations

from syncd.cli.app import build_parser, main
from syncd.cli.command import EXIT_ATTENTION, EXIT_CONFIG, EXIT_FAIL, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_ATTENTION", "EXIT_CONFIG", "EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]
