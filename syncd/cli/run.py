"""``syncd run``: the daemon."""

from __future__ import annotations

import argparse

from syncd.cli.command import AddCommand
from syncd.config import Config


def add_parser(add: AddCommand) -> None:
    p = add("run", "run the daemon")
    p.add_argument("--listen", metavar="HOST:PORT", help="health/metrics address (default [daemon] listen)")
    p.set_defaults(handler=cmd_run)


async def cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    from syncd.daemon import run_daemon

    return await run_daemon(cfg, listen=args.listen)
