"""``syncd outbox``: read the event stream, or prune old events and run records."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from syncd import jsonutil
from syncd.cli.command import EXIT_OK, AddCommand
from syncd.cli.connect import open_store
from syncd.config import Config
from syncd.timeutil import parse_duration


def add_parser(add: AddCommand) -> None:
    p = add("outbox", "read the outbox, or prune old events and sync_runs rows")
    p.add_argument("action", choices=["claim", "prune"])
    p.add_argument("--limit", type=int, default=100, help="claim: events per batch")
    p.add_argument("--peek", action="store_true", help="claim: print without marking processed")
    p.add_argument("--older-than", default="7d", help="prune: age, e.g. 7d")
    p.add_argument("--include-unprocessed", action="store_true", help="prune: also unprocessed events")
    p.set_defaults(handler=cmd_outbox)


async def cmd_outbox(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg) as store:
        if args.action == "prune":
            seconds = parse_duration(args.older_than)
            events = await store.prune_outbox(seconds, include_unprocessed=args.include_unprocessed)
            runs = await store.prune_runs(seconds)
            print(f"pruned {events} event(s) and {runs} sync run(s) older than {args.older_than}")
            return EXIT_OK
        # claim: print a batch as JSON lines and mark it processed, in one transaction
        await store.claim_events(args.limit, print_events, mark=not args.peek)
    return EXIT_OK


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
