"""``syncd status``: per provider, its targets, passes, listings, failures
and quarantine."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from syncd import jsonutil
from syncd.cli.command import EXIT_OK, AddCommand, positive_int
from syncd.cli.connect import open_store
from syncd.cli.output import fmt_time, print_table
from syncd.config import Config
from syncd.timeutil import utcnow

PROVIDER_COLUMNS = (
    "PROVIDER",
    "TARGETS",
    "DUE",
    "LEASED",
    "MIRRORED",
    "DELETED",
    "ERRORS",
    "QUARANTINED",
    "HELD-DEL",
    "LAST SYNC",
    "PAUSED UNTIL",
    "CIRCUIT",
)
RUN_COLUMNS = (
    "RUN",
    "PROVIDER",
    "TRIGGER",
    "STARTED",
    "STATUS",
    "FETCHED",
    "CREATED",
    "UPDATED",
    "DELETED",
    "UNCHANGED",
    "FAILED",
    "HELD",
    "READS",
    "REQ/USER",
)
DISCOVERY_COLUMNS = (
    "PROVIDER",
    "LAST LISTING",
    "VERDICT",
    "LISTED",
    "NEW",
    "MISSING",
    "LAST COMPLETE",
    "NEXT",
    "REASON",
)
#: the run record's counters, in RUN_COLUMNS' order
RUN_COUNTERS = ("fetched", "created", "updated", "deleted", "unchanged", "failed", "held")


def add_parser(add: AddCommand) -> None:
    p = add("status", "per provider: targets, due, last sync, errors")
    p.add_argument("--runs", type=positive_int, default=10, help="recent passes to show")
    p.add_argument("--json", action="store_true", help="one JSON object (keys in README, Commands)")
    p.set_defaults(handler=cmd_status)


async def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg) as store:
        rows = await store.provider_status([p.name for p in cfg.providers])
        runs = await store.recent_runs(args.runs)
        errors = await store.recent_errors(10)
        quarantined = await store.quarantined_targets(20)
        listings = await store.discovery_status()
    if args.json:
        print(jsonutil.dumps(status_json(rows, listings, runs, errors, quarantined)))
        return EXIT_OK
    print_table([_provider_row(r) for r in rows], PROVIDER_COLUMNS)
    if listings:
        print("\ndiscovery (listings of each provider's users):")
        print_table([_discovery_row(r) for r in listings], DISCOVERY_COLUMNS)
    if runs:
        print("\nrecent sync passes:")
        print_table([_run_row(r) for r in runs], RUN_COLUMNS)
    if errors:
        print("\nfailing targets:")
        _print_targets(errors)
    if quarantined:
        print("\nquarantined users (their document keeps being refused; retried at the interval):")
        _print_targets(quarantined)
    return EXIT_OK


def status_json(
    rows: Sequence[Any],
    listings: Sequence[Any],
    runs: Sequence[Any],
    errors: Sequence[Any],
    quarantined: Sequence[Any],
) -> dict[str, Any]:
    """``status --json``: the tables' contents under stable keys (timestamps
    in RFC 3339, absent values null), documented in the README."""
    now = utcnow()
    return {
        "providers": [
            {
                "provider": r["provider"],
                "targets": r["targets"],
                "due": r["due"],
                "leased": r["leased"],
                "mirrored": r["mirrored"],
                "deleted": r["deleted"],
                "errors": r["errors"],
                "quarantined": r["quarantined"],
                "held_deletions": r["pending_deletions"],
                "last_sync": r["last_sync"],
                "paused_until": r["paused_until"] if r["paused_until"] and r["paused_until"] > now else None,
                "pause_reason": r["pause_reason"] if r["paused_until"] and r["paused_until"] > now else None,
                "circuit": r["circuit"] or "closed",
            }
            for r in rows
        ],
        "discovery": [
            {
                "provider": r["provider"],
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "listing_now": r["leased_by"] if r["leased_by"] and r["lease_expires_at"] > now else None,
                "verdict": r["verdict"],
                "listed": r["listed"],
                "new": r["enrolled"],
                "missing": r["missing"],
                "last_complete": r["last_success_at"],
                "next_at": r["next_at"],
                "reason": r["reason"],
            }
            for r in listings
        ],
        "runs": [
            {
                "id": r["id"],
                "provider": r["provider"],
                "trigger": r["trigger"],
                "replica": r["replica"],
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "status": r["status"],
                **{c: r[c] for c in (*RUN_COUNTERS, "restored", "not_found")},
                "error": r["error"],
                "read_mode": r["read_mode"],
                "requests": r["requests"],
            }
            for r in runs
        ],
        "failing": [_target_json(r) for r in errors],
        "quarantined": [_target_json(r) for r in quarantined],
    }


def _target_json(r: Any) -> dict[str, Any]:
    return {
        "provider": r["provider"],
        "user_id": r["user_id"],
        "attempts": r["attempts"],
        "error": r["last_error"],
        "last_synced_at": r["last_synced_at"],
    }


def _provider_row(r: Any) -> tuple[Any, ...]:
    return (
        r["provider"],
        r["targets"],
        r["due"],
        r["leased"],
        r["mirrored"],
        r["deleted"],
        r["errors"],
        r["quarantined"],
        r["pending_deletions"],
        fmt_time(r["last_sync"]),
        _pause_cell(r["paused_until"], r["pause_reason"]),
        r["circuit"] or "closed",
    )


def _discovery_row(r: Any) -> tuple[Any, ...]:
    running = r["leased_by"] is not None and r["lease_expires_at"] > utcnow()
    return (
        r["provider"],
        fmt_time(r["started_at"]),
        f"listing now ({r['leased_by']})" if running else (r["verdict"] or "-"),
        r["listed"] if r["listed"] is not None else "-",
        r["enrolled"] if r["enrolled"] is not None else "-",
        r["missing"] if r["missing"] is not None else "-",
        fmt_time(r["last_success_at"]),
        fmt_time(r["next_at"]),
        (r["reason"] or "")[:90],
    )


def _pause_cell(until: Any, reason: str | None) -> str:
    if until is None or until <= utcnow():
        return "-"
    return f"{fmt_time(until)} ({reason})" if reason else fmt_time(until)


def _run_row(r: Any) -> tuple[Any, ...]:
    return (
        r["id"],
        r["provider"],
        r["trigger"],
        fmt_time(r["started_at"]),
        r["status"],
        *(r[c] for c in RUN_COUNTERS),
        r["read_mode"] or "-",
        _per_user(r["requests"], r["fetched"] + r["not_found"] + r["failed"]),
    )


def _per_user(requests: int | None, users: int) -> str:
    """Requests per user refreshed (a 404 or a failure was asked for too)."""
    if requests is None or not users:
        return "-"
    return f"{requests / users:.3f}"


def _print_targets(rows: Sequence[Any]) -> None:
    print_table(
        [(r["provider"], r["user_id"], r["attempts"], (r["last_error"] or "")[:90]) for r in rows],
        ["PROVIDER", "USER", "ATTEMPTS", "ERROR"],
    )
