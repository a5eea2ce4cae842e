"""``syncd migrate``: create or upgrade the database schema."""

from __future__ import annotations

import argparse

from syncd.cli.command import EXIT_OK, AddCommand
from syncd.cli.connect import open_store
from syncd.config import Config


def add_parser(add: AddCommand) -> None:
    p = add("migrate", "create or upgrade the database schema (idempotent)")
    p.set_defaults(handler=cmd_migrate)


async def cmd_migrate(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg, migrate=True) as store:
        pending = await store.pending_migrations()
    print("schema is current" + (f" (pending: {pending})" if pending else ""))
    return EXIT_OK
