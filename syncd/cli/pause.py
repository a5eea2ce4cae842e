"""``syncd pause``: a provider's shared Retry-After pause."""

from __future__ import annotations

import argparse

from syncd.cli.command import EXIT_OK, AddCommand
from syncd.cli.connect import open_store
from syncd.cli.output import fmt_time
from syncd.config import Config
from syncd.timeutil import utcnow


def add_parser(add: AddCommand) -> None:
    p = add("pause", "a provider's shared Retry-After pause (every replica obeys it)")
    p.add_argument("action", choices=["clear"])
    p.add_argument("--provider", metavar="NAME", required=True)
    p.set_defaults(handler=cmd_pause)


async def cmd_pause(cfg: Config, args: argparse.Namespace) -> int:
    """`syncd pause clear --provider P`: end a provider's pause for every
    replica (they re-read provider_state on the notification and drop theirs)."""
    cfg.provider(args.provider)
    async with open_store(cfg) as store:
        was = await store.clear_pause(args.provider)
    if was is not None and was > utcnow():
        print(f"{args.provider}: pause until {fmt_time(was)} cleared; replicas resume now")
    else:
        print(f"{args.provider}: was not paused")
    return EXIT_OK
