"""``syncd migrate``: create or upgrade the database schema."""

from __future__ import annotations

import argparse
import sys

from syncd.cli.command import EXIT_FAIL, EXIT_OK, AddCommand
from syncd.cli.connect import open_store
from syncd.config import Config
from syncd.store import migrations


def add_parser(add: AddCommand) -> None:
    p = add("migrate", "create or upgrade the database schema (idempotent)")
    p.set_defaults(handler=cmd_migrate)


async def cmd_migrate(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg, migrate=True) as store:
        applied = store.migrated
        pending = await store.pending_migrations()
    if applied:
        print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        latest = migrations()[-1].version if migrations() else "none"
        print(f"schema already current (latest: {latest}); nothing applied")
    if pending:  # another migrator's newer files? (a mixed installation)
        print(f"syncd migrate: still pending: {', '.join(pending)}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK
