"""``syncd targets``: which users are synced (add, remove, list)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from syncd import jsonutil, targetsfile
from syncd.cli.command import EXIT_FAIL, EXIT_OK, EXIT_USAGE, AddCommand, positive_int
from syncd.cli.connect import open_store
from syncd.cli.ids import MAX_BAD_SHOWN, reject_ids
from syncd.cli.output import fmt_time, print_table
from syncd.config import Config, ProviderBase
from syncd.errors import ProviderError
from syncd.providers.base import SearchBy
from syncd.providers.search import UserNotFound
from syncd.store import Store


def add_parser(add: AddCommand) -> None:
    p = add("targets", "manage which users are synced")
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("user_ids", nargs="*", metavar="ID")
    p.add_argument("--provider", metavar="NAME")
    p.add_argument(
        "--file", metavar="PATH", help="one user id per line (UTF-8; blank lines and # comments skipped)"
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="with --file: use the good lines when some are bad (default: change nothing)",
    )
    p.add_argument(
        "--username", metavar="NAME", help="add: the user with this user name (looked up at the provider)"
    )
    p.add_argument(
        "--email", metavar="ADDR", help="add: the user with this email (looked up at the provider)"
    )
    p.add_argument("--limit", type=positive_int, default=1000, help="list: at most this many (default 1000)")
    p.add_argument("--json", action="store_true", help="list: one JSON object (keys in README, Commands)")
    p.set_defaults(handler=cmd_targets)


async def cmd_targets(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg) as store:
        if args.action == "list":
            await _list(store, args)
            return EXIT_OK
        if not args.provider:
            print(f"syncd targets {args.action}: --provider is required", file=sys.stderr)
            return EXIT_USAGE
        provider = cfg.provider(args.provider)
        if args.username or args.email:
            return await _add_found(store, provider, args)
        ids = await _requested_ids(args)
        if ids is None:
            return EXIT_USAGE
        if args.action == "add":
            await store.add_targets(args.provider, ids)
            print(f"{args.provider}: {len(ids)} target(s) added (due now)")
        else:
            n = await store.remove_targets(args.provider, ids)
            print(f"{args.provider}: {n} target(s) removed (mirror rows are kept)")
    return EXIT_OK


async def _add_found(store: Store, provider: ProviderBase, args: argparse.Namespace) -> int:
    """``--username``/``--email``: the one user the provider's search finds;
    none or several is an error that says so, and nothing is added."""
    from syncd.sync.credentials import attach_store
    from syncd.sync.runtime import open_runtime

    command = f"syncd targets {args.action}"
    if args.action != "add" or (args.username and args.email) or args.user_ids or args.file:
        print(f"{command}: --username or --email, alone, goes with add", file=sys.stderr)
        return EXIT_USAGE
    by: SearchBy = "username" if args.username else "email"
    value = args.username or args.email
    runtime = open_runtime(provider)
    attach_store(runtime, store)  # a refresh it rotates is the daemons' newest token
    try:
        user_id = await runtime.connection.find_user(by, value)
    except (UserNotFound, ProviderError) as exc:
        print(f"{command}: {exc}; nothing was added", file=sys.stderr)
        return EXIT_FAIL
    finally:
        await runtime.close()
    await store.add_targets(provider.name, [user_id])
    print(f"{provider.name}: target {user_id} added ({by} {value}; due now)")
    return EXIT_OK


async def _list(store: Store, args: argparse.Namespace) -> None:
    """The targets, in (provider, user id) order, at most ``--limit``; a list
    cut short says so (on stderr, so that the table stays a table)."""
    rows = await store.list_targets(args.provider, limit=args.limit)
    total = len(rows) if len(rows) < args.limit else await store.count_listed_targets(args.provider)
    if args.json:
        targets = [
            {
                "provider": r["provider"],
                "user_id": r["user_id"],
                "next_sync_at": r["next_sync_at"],
                "last_synced_at": r["last_synced_at"],
                "last_status": r["last_status"],
                "last_error": r["last_error"],
                "attempts": r["attempts"],
                "leased_by": r["leased_by"],
            }
            for r in rows
        ]
        print(jsonutil.dumps({"total": total, "shown": len(rows), "targets": targets}))
        return
    print_table(
        [
            (
                r["provider"],
                r["user_id"],
                fmt_time(r["next_sync_at"]),
                fmt_time(r["last_synced_at"]),
                r["last_status"] or "-",
                (r["last_error"] or "")[:60],
            )
            for r in rows
        ],
        ["PROVIDER", "USER", "NEXT SYNC", "LAST SYNC", "STATUS", "ERROR"],
    )
    if total > len(rows):
        print(
            f"showing {len(rows):,} of {total:,} targets; use --limit {total} to see them all",
            file=sys.stderr,
        )


async def _requested_ids(args: argparse.Namespace) -> list[str] | None:
    """The ids on the command line and in ``--file``, deduplicated in order;
    None (having said why) if they can't be used: a bad id, an unreadable
    file, bad lines without ``--skip-bad``, or no ids at all."""
    command = f"syncd targets {args.action}"
    ids = list(args.user_ids)
    if reject_ids(command, ids):
        return None
    if args.file:
        from_file = await _ids_from_file(command, args)
        if from_file is None:
            return None
        ids += from_file
    ids = list(dict.fromkeys(ids))
    if not ids:
        print(f"{command}: give user ids (or --file)", file=sys.stderr)
        return None
    return ids


async def _ids_from_file(command: str, args: argparse.Namespace) -> list[str] | None:
    """The good ids of ``--file``; None (having said why) if the file can't be
    read, or has bad lines and ``--skip-bad`` was not given."""
    try:
        data = await asyncio.to_thread(Path(args.file).read_bytes)
    except OSError as exc:
        print(f"{command}: --file {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return None
    parsed = targetsfile.parse(data)
    if parsed.bad:
        print(f"{command}: {args.file}: {len(parsed.bad)} bad line(s):", file=sys.stderr)
        for number, reason in parsed.bad[:MAX_BAD_SHOWN]:
            print(f"  line {number}: {reason}", file=sys.stderr)
        if len(parsed.bad) > MAX_BAD_SHOWN:
            print(f"  … and {len(parsed.bad) - MAX_BAD_SHOWN} more", file=sys.stderr)
        if not args.skip_bad:
            changed = "added" if args.action == "add" else "removed"
            print(
                f"{command}: nothing was {changed}; fix those lines, or pass --skip-bad to"
                f" {args.action} the {len(parsed.ids)} good id(s)",
                file=sys.stderr,
            )
            return None
        print(f"{command}: --skip-bad: {len(parsed.bad)} bad line(s) skipped", file=sys.stderr)
    return list(parsed.ids)
