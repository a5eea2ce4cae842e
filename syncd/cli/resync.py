"""``syncd resync``: sync users now, inline with a progress bar, as a dry run,
or enqueued for the running daemons."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from syncd import jsonutil
from syncd.cli.command import (
    EXIT_ATTENTION,
    EXIT_CONFIG,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    AddCommand,
)
from syncd.cli.connect import open_store
from syncd.cli.ids import reject_ids
from syncd.cli.output import fmt_utc
from syncd.config import Config
from syncd.store import LeasedElsewhere, Store

if TYPE_CHECKING:
    from syncd.engine import Engine

#: `resync --wait` waits at most this long beyond a lease length
RESYNC_WAIT_MARGIN = 5.0
#: how often `resync --wait` looks at the leases (seconds)
RESYNC_WAIT_POLL = 1.0


def add_parser(add: AddCommand) -> None:
    p = add("resync", "sync users now (inline, with a progress bar), or --enqueue for running daemons")
    p.add_argument("--provider", metavar="NAME")
    p.add_argument("--user", metavar="ID", action="append", default=[], help="repeatable")
    p.add_argument("--all", action="store_true", help="every target (of --provider, or of every provider)")
    p.add_argument("--dry-run", action="store_true", help="fetch and diff; print JSON Patches; write nothing")
    p.add_argument("--enqueue", action="store_true", help="mark due and let running daemons do it")
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait (at most one lease length and a margin) for targets leased by another replica, then sync them",
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = (
        "Targets leased by another replica (a running daemon's, or a killed resync's until\n"
        "its leases run out) are skipped: resync says how many and until when, and exits\n"
        f"{EXIT_ATTENTION}; --wait waits for those leases, then syncs them.\n\n"
        f"exit codes: {EXIT_OK} all synced; {EXIT_FAIL} a user or the pass failed; {EXIT_USAGE} usage;"
        f" {EXIT_CONFIG} invalid configuration;\n"
        f"  {EXIT_ATTENTION} finished, but targets leased by another replica were not synced"
    )
    p.set_defaults(handler=cmd_resync)


def _usage_problem(args: argparse.Namespace) -> str | None:
    if not args.all and not args.user:
        return "say which users: --all, or --user ID (repeatable)"
    if args.user and not args.provider:
        return "--user needs --provider"
    if args.wait and (args.dry_run or args.enqueue):
        return "--wait is for an inline resync, not --dry-run or --enqueue"
    return None


async def cmd_resync(cfg: Config, args: argparse.Namespace) -> int:
    from syncd.engine import Engine, default_replica

    problem = _usage_problem(args)
    if problem:
        print(f"syncd resync: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if reject_ids("syncd resync", args.user):
        return EXIT_USAGE
    names = [args.provider] if args.provider else [p.name for p in cfg.providers]
    for name in names:
        cfg.provider(name)
    if not names:
        print(f"syncd resync: no providers configured in {cfg.source}", file=sys.stderr)
        return EXIT_CONFIG
    only = list(dict.fromkeys(args.user)) if args.user else None
    async with open_store(cfg) as store:
        # a one-off command is a replica of its own: with the daemon's configured
        # name it would take the daemon's leases for its own (and release them)
        engine = Engine(store, cfg, replica=default_replica())
        if not args.dry_run:  # a dry run writes nothing, not even new targets
            await engine.register_config_targets()
            if only:
                await store.add_targets(names[0], only)
        if args.enqueue:
            await _enqueue(store, names, only)
            return EXIT_OK
        async with engine:
            if args.dry_run:
                for name in names:
                    await _dry_run(engine, store, name, only)
                return EXIT_OK
            lease = cfg.sync.lease if args.wait else None
            results = [await _sync(engine, store, name, only, wait_up_to=lease) for name in names]
    if any(failed for failed, _ in results):
        return EXIT_FAIL
    return EXIT_ATTENTION if any(skipped for _, skipped in results) else EXIT_OK


async def _enqueue(store: Store, names: Sequence[str], only: Sequence[str] | None) -> None:
    for name in names:
        n = await store.make_due(name, only)
        await store.notify_resync(name)
        print(f"{name}: {n} target(s) marked due; running daemons will sync them now")


async def _dry_run(engine: Engine, store: Store, name: str, only: Sequence[str] | None) -> None:
    """The changes a pass would make, as JSON lines; the counts on stderr."""
    report = await _with_progress(engine.dry_run, name, only, store)
    for uid, change, ops in report.diffs:
        print(jsonutil.dumps({"provider": name, "user_id": uid, "change": change, "patch": ops}))
    print(report.summary() + " (dry run: nothing written)", file=sys.stderr)


async def _sync(
    engine: Engine, store: Store, name: str, only: Sequence[str] | None, *, wait_up_to: float | None
) -> tuple[bool, bool]:
    """One provider's inline pass; with ``wait_up_to`` (a lease length, for
    ``--wait``), then the targets another replica held, once their leases end.
    Returns (something failed, targets another replica leases were left unsynced)."""
    await store.make_due(name, only)
    report = await _with_progress(engine.sync, name, only, store, trigger="resync")
    failed = _print_pass(report)
    # lease_due skips targets another replica leases (a killed resync's, a
    # running daemon's): say so, and with --wait, wait for them and sync them
    held = await store.leased_elsewhere(name, engine.replica, only)
    waited = None
    if held.targets and wait_up_to is not None:
        waited_for = held.targets
        held, waited = await _wait_for_leases(store, name, engine.replica, only, wait_up_to, held)
        if held.targets < waited_for:  # some (or all) were released or ran out: sync them
            report = await _with_progress(
                engine.sync, name, only, store, trigger="resync", total=waited_for - held.targets
            )
            failed |= _print_pass(report)
            held = await store.leased_elsewhere(name, engine.replica, only)
    if held.targets:
        print(_leased_message(name, held, waited))
    return failed, bool(held.targets)


def _print_pass(report: Any) -> bool:
    """Print a pass's summary line; True if the pass or a user failed."""
    print(report.summary() + (f" [{report.status}: {report.error}]" if report.error else ""))
    return bool(report.status != "ok" or report.counts["failed"] > 0)


async def _wait_for_leases(
    store: Store,
    name: str,
    owner: str,
    only: Sequence[str] | None,
    lease: float,
    held: LeasedElsewhere,
) -> tuple[LeasedElsewhere, float]:
    """Poll until no requested target of ``name`` is leased by another
    replica, or the leases seen first (at most one lease length: a live
    replica renews its leases, a dead one's run out within one) have had
    ``RESYNC_WAIT_MARGIN`` seconds more. Returns the leases still held, and
    how long it would wait."""
    loop = asyncio.get_running_loop()
    budget = min(max(held.seconds_left, 0.0), lease) + RESYNC_WAIT_MARGIN
    deadline = loop.time() + budget
    tty = sys.stderr.isatty()
    shown_n, shown_at = -1, float("-inf")
    while held.targets:
        now = loop.time()
        if now >= deadline:
            break
        if tty or held.targets != shown_n or now - shown_at >= 10:
            line = (
                f"{name}: waiting for {held.targets} target(s) leased by another replica ({_owners(held.owners)})"
                f" until {fmt_utc(held.until)} (gives up in {deadline - now:.0f} s)"
            )
            print(f"\r\x1b[K{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
            shown_n, shown_at = held.targets, now
        # wake just after the last lease ends, and at least every RESYNC_WAIT_POLL
        await asyncio.sleep(min(RESYNC_WAIT_POLL, max(held.seconds_left, 0.0) + 0.05, deadline - now))
        held = await store.leased_elsewhere(name, owner, only)
    if tty and shown_n >= 0:
        print(file=sys.stderr)
    return held, budget


def _owners(owners: Sequence[str]) -> str:
    shown = ", ".join(owners[:3])
    return shown + (f" and {len(owners) - 3} more" if len(owners) > 3 else "") if owners else "unknown"


def _leased_message(name: str, held: LeasedElsewhere, waited: float | None) -> str:
    text = (
        f"{name}: {held.targets} target(s) leased by another replica ({_owners(held.owners)})"
        f" until {fmt_utc(held.until)}; "
    )
    if waited is None:
        return text + "not synced — rerun with --wait"
    return text + f"not synced: gave up waiting after {waited:.0f} s (a lease and a margin); rerun later"


async def _with_progress(
    fn: Any, name: str, only: Sequence[str] | None, store: Store, *, total: int | None = None, **kw: Any
) -> Any:
    from tqdm import tqdm

    if total is None:
        total = len(only) if only else await store.count_targets(name)
    with tqdm(total=total, desc=name, unit="user", disable=None, file=sys.stderr, leave=False) as bar:
        return await fn(name, only=only, progress=bar.update, **kw)
