"""``syncd resync``: sync users now, inline with a progress bar, as a dry run,
or enqueued for the running daemons."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

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
from syncd.model.status import TargetStatus
from syncd.store import LeasedElsewhere, Store
from syncd.timeutil import utcnow

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
    p.add_argument(
        "--add",
        action="store_true",
        help="with --user: make those users targets, synced from now on (without it a user"
        " that is not a target is synced once and stays no target)",
    )
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
        "its leases run out) are skipped: resync says how many and until when; --wait waits\n"
        "for those leases, then syncs them. A long Retry-After pause shows on the progress\n"
        "line; `syncd pause clear --provider NAME` ends it.\n\n"
        f"exit codes: {EXIT_OK} every user fetched and written; {EXIT_FAIL} a user or the pass failed;"
        f" {EXIT_USAGE} usage;\n"
        f"  {EXIT_CONFIG} invalid configuration; {EXIT_ATTENTION} finished, but needs attention: users"
        " not found,\n  deletions held, or targets leased by another replica not synced"
    )
    p.set_defaults(handler=cmd_resync)


def _usage_problem(args: argparse.Namespace) -> str | None:
    if not args.all and not args.user:
        return "say which users: --all, or --user ID (repeatable)"
    if args.user and not args.provider:
        return "--user needs --provider"
    if args.wait and (args.dry_run or args.enqueue):
        return "--wait is for an inline resync, not --dry-run or --enqueue"
    if args.add and (not args.user or args.dry_run):
        return "--add goes with --user, and not with --dry-run (which writes nothing)"
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
        # users asked for by id that are not targets: synced once (a pass
        # leases target rows, so they are targets for the pass), then no target
        # again, so that a typo is not re-fetched forever; --add keeps them
        once: list[str] = []
        if not args.dry_run:  # a dry run writes nothing, not even new targets
            await engine.register_config_targets()
            if only:
                known = await store.target_statuses(names[0], only)
                once = [] if args.add else [uid for uid in only if uid not in known]
                if once and args.enqueue:
                    print(
                        f"syncd resync: {_ids_text(once)} not a target of {names[0]}: running daemons sync"
                        " only targets; add --add to make it one, or drop --enqueue to sync it once now",
                        file=sys.stderr,
                    )
                    return EXIT_USAGE
                await store.add_targets(names[0], only)
        if args.enqueue:
            await _enqueue(store, names, only)
            return EXIT_OK
        try:
            async with engine:
                if args.dry_run:
                    outcomes = [await _dry_run(engine, store, name, only) for name in names]
                else:
                    lease = cfg.sync.lease if args.wait else None
                    outcomes = [await _sync(engine, store, name, only, wait_up_to=lease) for name in names]
        finally:
            if once:
                await _forget_once(store, names[0], once)
    return _exit_code(outcomes)


def _ids_text(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    return f"{shown} is" if len(ids) == 1 else f"{shown} are"


async def _forget_once(store: Store, name: str, once: Sequence[str]) -> None:
    """The users synced once (not targets, no --add): say what each found, and
    take them out of the targets again (their mirror rows, if any, stay)."""
    found = await store.target_statuses(name, once)
    await store.remove_targets(name, once)
    for uid in once:
        row = found.get(uid)
        status = row["last_status"] if row else None
        if status in _NOT_FOUND:
            print(
                f"{name}: user {uid} not found at the provider (not a target: nothing kept)", file=sys.stderr
            )
        elif status in _SYNCED:
            print(
                f"{name}: user {uid} synced once; it is not a target, so it is not kept in sync"
                " (resync --add, or `syncd targets add`, makes it one)",
                file=sys.stderr,
            )
        else:
            error = f": {row['last_error']}" if row and row["last_error"] else ""
            print(
                f"{name}: user {uid} not synced ({status or 'not reached'}{error}); not a target",
                file=sys.stderr,
            )


#: what a target's last status says about a user synced once
_NOT_FOUND = {
    TargetStatus.NOT_FOUND,
    TargetStatus.NOT_FOUND_UNCONFIRMED,
    TargetStatus.DELETING,
    TargetStatus.DELETED,
    TargetStatus.DELETION_HELD,
    TargetStatus.DELETION_REJECTED,
}
_SYNCED = {TargetStatus.CREATED, TargetStatus.UPDATED, TargetStatus.RESTORED, TargetStatus.UNCHANGED}


class Outcome(NamedTuple):
    """What one provider's resync (or dry run) leaves for the exit code."""

    failed: bool
    #: users not found, deletions held, targets another replica leases left unsynced
    attention: list[str]


def _attention(counts: dict[str, int]) -> list[str]:
    found = []
    # a user deleted in the mirror already answers 404 as expected: no news
    gone = counts["not_found"] - counts.get("still_deleted", 0)
    if gone > 0:
        found.append(f"{gone} user(s) not found")
    if counts["held"]:
        found.append(f"{counts['held']} deletion(s) held (see `syncd deletions list`)")
    return found


def _exit_code(outcomes: Sequence[Outcome]) -> int:
    """0: every user fetched and written; 1: a failure; 4: done, but look (said on stderr)."""
    if any(o.failed for o in outcomes):
        return EXIT_FAIL
    attention = [a for o in outcomes for a in o.attention]
    if attention:
        print(f"syncd resync: finished, needs attention: {'; '.join(attention)}", file=sys.stderr)
        return EXIT_ATTENTION
    return EXIT_OK


async def _enqueue(store: Store, names: Sequence[str], only: Sequence[str] | None) -> None:
    for name in names:
        n = await store.make_due(name, only)
        await store.notify_resync(name)
        print(f"{name}: {n} target(s) marked due; running daemons will sync them now")


async def _dry_run(engine: Engine, store: Store, name: str, only: Sequence[str] | None) -> Outcome:
    """The changes a pass would make, as JSON lines; the counts on stderr."""
    report = await _with_progress(engine, engine.dry_run, name, only, store)
    for uid, change, ops in report.diffs:
        print(jsonutil.dumps({"provider": name, "user_id": uid, "change": change, "patch": ops}))
    print(report.summary() + " (dry run: nothing written)", file=sys.stderr)
    failed = bool(report.status != "ok" or report.counts["failed"] > 0)
    return Outcome(failed, [f"{name}: {a}" for a in _attention(report.counts)])


async def _sync(
    engine: Engine, store: Store, name: str, only: Sequence[str] | None, *, wait_up_to: float | None
) -> Outcome:
    """One provider's inline pass; with ``wait_up_to`` (a lease length, for
    ``--wait``), then the targets another replica held, once their leases end."""
    await store.make_due(name, only)
    report = await _with_progress(engine, engine.sync, name, only, store, trigger="resync")
    failed = _print_pass(report)
    counts = dict(report.counts)
    # lease_due skips targets another replica leases (a killed resync's, a
    # running daemon's): say so, and with --wait, wait for them and sync them
    held = await store.leased_elsewhere(name, engine.replica, only)
    waited = None
    if held.targets and wait_up_to is not None:
        waited_for = held.targets
        held, waited = await _wait_for_leases(store, name, engine.replica, only, wait_up_to, held)
        if held.targets < waited_for:  # some (or all) were released or ran out: sync them
            report = await _with_progress(
                engine, engine.sync, name, only, store, trigger="resync", total=waited_for - held.targets
            )
            failed |= _print_pass(report)
            counts = {k: n + report.counts[k] for k, n in counts.items()}
            held = await store.leased_elsewhere(name, engine.replica, only)
    attention = _attention(counts)
    if held.targets:
        print(_leased_message(name, held, waited))
        attention.append(f"{held.targets} target(s) leased by another replica not synced")
    return Outcome(failed, [f"{name}: {a}" for a in attention])


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
    engine: Engine,
    fn: Any,
    name: str,
    only: Sequence[str] | None,
    store: Store,
    *,
    total: int | None = None,
    **kw: Any,
) -> Any:
    """``fn`` (a pass or a dry run) under a progress bar on stderr, which also
    says when and why the provider is paused (a pass waits silently otherwise)."""
    from tqdm import tqdm

    if total is None:
        total = len(only) if only else await store.count_targets(name)
    with tqdm(total=total, desc=name, unit="user", disable=None, file=sys.stderr, leave=False) as bar:
        shown = asyncio.create_task(_show_pauses(engine, name, bar), name=f"pauses-{name}")
        try:
            return await fn(name, only=only, progress=bar.update, **kw)
        finally:
            shown.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shown


#: how often the progress line looks at the provider's pause (seconds)
PAUSE_POLL = 0.25
#: without a terminal, a pause is said (one line) only when it has this much left (seconds):
#: a storm of 1-second Retry-Afters is not a log of lines
PAUSE_SAID_FROM = 2.0


async def _show_pauses(engine: Engine, name: str, bar: Any) -> None:
    """While a pass runs: a pause in force on the progress line (a terminal), or
    one line on stderr per pause (no terminal); cleared when it ends."""
    gate = engine.runtime(name).gate
    shown: Any = None
    while True:
        until = gate.paused_until if gate.paused() else None
        if until != shown:
            if until is None:
                if not bar.disable:
                    bar.set_postfix_str("")
            else:
                text = pause_text(name, until, gate.pause_reason)
                if not bar.disable:
                    bar.set_postfix_str(text)
                elif (until - utcnow()).total_seconds() >= PAUSE_SAID_FROM:
                    print(f"{name}: {text}", file=sys.stderr, flush=True)
            shown = until
        await asyncio.sleep(PAUSE_POLL)


def pause_text(name: str, until: datetime, reason: str | None) -> str:
    """``paused by the provider until 14:05:10 UTC (HTTP 429, Retry-After); …``"""
    why = (
        f"{reason}, Retry-After" if reason and reason.startswith("HTTP") and "Retry" not in reason else reason
    )
    return (
        f"paused by the provider until {until.astimezone(UTC):%H:%M:%S} UTC ({why or 'Retry-After'});"
        f" `syncd pause clear --provider {name}` ends it"
    )
