"""``syncd outbox``: read the event stream, or prune old events and run records."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from syncd import jsonutil
from syncd.cli.command import EXIT_OK, EXIT_USAGE, AddCommand, duration_arg, positive_int
from syncd.cli.confirm import confirmed
from syncd.cli.connect import open_store
from syncd.cli.output import fmt_duration
from syncd.config import Config

#: a prune of events younger than this (or of unprocessed ones) is not routine
#: retention: it asks on a terminal, and needs --yes without one
PRUNE_ASK_UNDER = 86400.0


def add_parser(add: AddCommand) -> None:
    p = add("outbox", "read the outbox, or prune old events and sync_runs rows")
    p.add_argument("action", choices=["claim", "prune"])
    p.add_argument("--limit", type=positive_int, default=100, help="claim: events per batch")
    p.add_argument("--peek", action="store_true", help="claim: print without marking processed")
    p.add_argument(
        "--older-than", type=duration_arg, default=7 * 86400.0, help="prune: age with its unit, e.g. 7d"
    )
    p.add_argument("--include-unprocessed", action="store_true", help="prune: also unprocessed events")
    p.add_argument(
        "--yes",
        action="store_true",
        help="prune: don't ask before a prune under 1d or of unprocessed events (needed without a terminal)",
    )
    p.set_defaults(handler=cmd_outbox)


async def cmd_outbox(cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "prune" and not _prune_allowed(args):
        return EXIT_USAGE
    async with open_store(cfg) as store:
        if args.action == "prune":
            seconds = args.older_than
            events = await store.prune_outbox(seconds, include_unprocessed=args.include_unprocessed)
            runs = await store.prune_runs(seconds)
            print(f"pruned {events} event(s) and {runs} sync run(s) older than {fmt_duration(seconds)}")
            return EXIT_OK
        # claim: print a batch as JSON lines and mark it processed, in one transaction
        await store.claim_events(args.limit, print_events, mark=not args.peek)
    return EXIT_OK


def _prune_allowed(args: argparse.Namespace) -> bool:
    """Routine retention (processed events, a day old or more) just runs, so
    a timer or CronJob needs nothing more; anything that reaches recent run
    history or events no consumer has seen asks first (or needs --yes)."""
    if args.older_than >= PRUNE_ASK_UNDER and not args.include_unprocessed:
        return True
    events = "outbox event" if args.include_unprocessed else "processed outbox event"
    what = (
        f"delete every {events}"
        + (" (including ones no consumer has claimed)" if args.include_unprocessed else "")
        + f" and every finished sync run older than {fmt_duration(args.older_than)}"
    )
    return confirmed("syncd outbox prune", what, yes=args.yes)


def print_events(rows: Sequence[Any]) -> None:
    """Events as JSON lines, the outbox contract's fields."""
    for r in rows:
        event = {
            "id": str(r["id"]),
            "seq": r["seq"],
            "aggregateid": r["aggregateid"],
            "type": r["type"],
            "created_at": r["created_at"].isoformat(),
            "payload": r["payload"],
        }
        print(jsonutil.dumps(event))
