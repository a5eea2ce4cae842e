"""``syncd export``: the mirror as JSON lines, with the outbox position it
matches, so a new consumer can load it and then read the events after that
position, missing none and seeing none twice.

The first line is the snapshot's header, each next one a user::

    {"type": "snapshot", "outbox_seq": 1234, "taken_at": "…"}
    {"type": "user", "provider": "corp", "user_id": "…", "deleted_at": null, "record": {…}}
    …
    {"type": "end", "outbox_seq": 1234, "users": 2}

``record`` is the user as events carry it (``payload.after``); the ``end``
line tells a complete file from a cut-off one.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import IO, Any

from syncd import jsonutil
from syncd.cli.command import EXIT_OK, AddCommand
from syncd.cli.connect import open_store
from syncd.config import Config
from syncd.model.events import record_from_row


def add_parser(add: AddCommand) -> None:
    p = add("export", "the mirror as JSON lines with the outbox position it matches (a consumer's bootstrap)")
    p.add_argument("--provider", metavar="NAME", help="only this provider (default: all)")
    p.add_argument("--format", choices=["jsonl"], default="jsonl", help="output format (default: jsonl)")
    p.add_argument("--output", metavar="FILE", help="write here instead of standard output")
    p.add_argument("--include-deleted", action="store_true", help="also users deleted upstream")
    p.set_defaults(handler=cmd_export)


async def cmd_export(cfg: Config, args: argparse.Namespace) -> int:
    if args.provider:
        cfg.provider(args.provider)  # a ConfigError naming the known ones
    with contextlib.ExitStack() as stack:
        # a one-shot command: opening its output file blocks nothing else
        out = stack.enter_context(open(args.output, "w", encoding="utf-8")) if args.output else sys.stdout  # noqa: ASYNC230
        async with open_store(cfg) as store:
            users = await write_export(store, out, args.provider, include_deleted=args.include_deleted)
        out.flush()
    if args.output:
        print(f"exported {users} user(s) to {args.output}", file=sys.stderr)
    return EXIT_OK


async def write_export(store: Any, out: IO[str], provider: str | None, *, include_deleted: bool) -> int:
    async with store.export_snapshot(provider, include_deleted=include_deleted) as (position, rows):
        header = {
            "type": "snapshot",
            "outbox_seq": position.outbox_seq,
            "taken_at": position.taken_at.isoformat(),
        }
        out.write(jsonutil.dumps(header) + "\n")
        users = 0
        async for row in rows:
            line = {
                "type": "user",
                "provider": row["provider"],
                "user_id": row["user_id"],
                "deleted_at": row["deleted_at"].isoformat() if row["deleted_at"] else None,
                "record": record_from_row(row),
            }
            out.write(jsonutil.dumps(line) + "\n")
            users += 1
        out.write(jsonutil.dumps({"type": "end", "outbox_seq": position.outbox_seq, "users": users}) + "\n")
    return users
