"""``syncd deletions``: deletions held by the mass-deletion guard."""

from __future__ import annotations

import argparse
import sys

from syncd.cli.command import EXIT_FAIL, EXIT_OK, AddCommand
from syncd.cli.connect import open_store
from syncd.cli.output import fmt_time, print_table
from syncd.config import Config


def add_parser(add: AddCommand) -> None:
    p = add("deletions", "deletions held by the mass-deletion guard")
    p.add_argument("action", choices=["list", "approve", "reject"])
    p.add_argument("--provider", metavar="NAME", required=True)
    p.set_defaults(handler=cmd_deletions)


async def cmd_deletions(cfg: Config, args: argparse.Namespace) -> int:
    from syncd.engine import Engine, default_replica

    cfg.provider(args.provider)
    async with open_store(cfg) as store:
        pending = await store.pending_deletions(args.provider)
        ids = [r["user_id"] for r in pending]
        if args.action == "list" or not ids:
            print_table(
                [(args.provider, r["user_id"], fmt_time(r["detected_at"])) for r in pending],
                ["PROVIDER", "USER", "DETECTED"],
            )
            if not ids:
                print(f"{args.provider}: no deletions held")
            return EXIT_OK
        async with Engine(store, cfg, replica=default_replica()) as engine:
            done, kept, busy = await engine.decide_held_deletions(
                args.provider, ids, approve=args.action == "approve"
            )
        if args.action == "reject":
            print(
                f"{args.provider}: {done} held deletion(s) rejected; those users stay in the mirror"
                " while they answer 404"
            )
        else:
            print(f"{args.provider}: {done} user(s) deleted ({kept} had come back and were kept)")
        if busy:
            print(
                f"{args.provider}: {busy} user(s) are being synced right now and were left held;"
                f" run `syncd deletions {args.action} --provider {args.provider}` again",
                file=sys.stderr,
            )
            return EXIT_FAIL
    return EXIT_OK
