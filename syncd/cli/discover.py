"""``syncd discover``: list each provider's users and enrol the new ones.

Exit 0 only when every listing was complete; a listing that was incomplete,
failed, empty (without ``--allow-empty``) or held by another replica changed
nothing and makes the command fail, so a cron job or an admin notices.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from syncd.cli.command import EXIT_FAIL, EXIT_OK, EXIT_USAGE, AddCommand
from syncd.cli.connect import open_store
from syncd.cli.output import fmt_time, print_table
from syncd.config import Config
from syncd.discovery.run import DiscoveryReport

COLUMNS = ("PROVIDER", "VERDICT", "LISTED", "NEW", "MISSING", "UNCHANGED", "REFRESHED", "CHANGED", "REASON")


def add_parser(add: AddCommand) -> None:
    p = add("discover", "list providers' users; enrol new ones, make missing ones due")
    p.add_argument("--provider", metavar="NAME", help="only this provider (default: all with `discover` set)")
    p.add_argument("--dry-run", action="store_true", help="list and compare, write nothing")
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="apply an empty listing although the mirror holds users of the provider",
    )
    p.set_defaults(handler=cmd_discover)


def providers_to_list(cfg: Config, only: str | None) -> list[str]:
    if only:
        cfg.provider(only)  # a ConfigError naming the known providers
        return [only]
    return [p.name for p in cfg.providers if p.discover is not None]


async def cmd_discover(cfg: Config, args: argparse.Namespace) -> int:
    from syncd.engine import Engine, default_replica

    names = providers_to_list(cfg, args.provider)
    if not names:
        print("syncd: no provider has `discover` set; set it, or name one with --provider", file=sys.stderr)
        return EXIT_USAGE
    async with open_store(cfg) as store:
        engine = Engine(store, cfg, replica=cfg.daemon.replica or default_replica())
        async with engine:
            reports = [
                await engine.discover(name, dry_run=args.dry_run, allow_empty=args.allow_empty)
                for name in names
            ]
    print_reports(reports, dry_run=args.dry_run)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FAIL


def print_reports(reports: Sequence[DiscoveryReport], *, dry_run: bool) -> None:
    if dry_run:
        print("dry run: nothing was written")
    print_table([_row(r) for r in reports], COLUMNS)
    for r in reports:
        if r.holder is not None:
            print(
                f"{r.provider}: replica {r.holder.owner} is listing it (lease until"
                f" {fmt_time(r.holder.until)}); try again later",
                file=sys.stderr,
            )
        elif not r.ok:
            refreshed = f" (its pages refreshed {r.refreshed} targets)" if r.refreshed else ""
            print(
                f"{r.provider}: listing {r.verdict}, no one enrolled or made due{refreshed}: {r.reason}",
                file=sys.stderr,
            )


def _row(r: DiscoveryReport) -> tuple[object, ...]:
    complete = r.ok
    return (
        r.provider,
        str(r.verdict),
        r.listed,
        r.new if complete else "-",
        r.missing if complete else "-",
        r.unchanged if complete else "-",
        # the pages' documents refreshed these targets, even when the
        # listing as a whole was refused
        r.refreshed,
        r.changed,
        (r.reason or "")[:80],
    )
