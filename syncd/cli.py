"""``syncd``: the command line. Every command takes ``--config PATH``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from syncd import __version__, embedded, jsonutil, logs
from syncd import config as config_mod
from syncd.config import Config, ProviderBase
from syncd.errors import ConfigError, ProviderError, StoreUnavailable, SyncdError
from syncd.process import tune_gc
from syncd.store import LeasedElsewhere, Store
from syncd.timeutil import parse_duration, utcnow

log = structlog.get_logger("syncd.cli")

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3
#: the command finished, but not everything it was asked to do was done and the admin
#: should look (`resync`: targets another replica leases were skipped; see --wait)
EXIT_ATTENTION = 4


# -- plumbing ---------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def open_store(cfg: Config, *, migrate: bool = False) -> AsyncIterator[Store]:
    """Connect to the configured database, or start the embedded one."""
    server = None
    url = cfg.database.resolved_url()
    if not url:
        server = await asyncio.to_thread(embedded.start, cfg.state_dir)
        url = embedded.url(server)
    store = await Store.connect(url, min_size=cfg.database.pool_min, max_size=cfg.database.pool_max)
    try:
        if migrate:
            await store.migrate()
        else:
            pending = await store.pending_migrations()
            if pending:
                raise SyncdError(
                    f"the database schema is not current (pending: {', '.join(pending)}): run `syncd migrate`"
                )
        yield store
    finally:
        await store.close()


def _print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out: Any = None) -> None:
    out = out or sys.stdout
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=out)


def _fmt_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


# -- commands ---------------------------------------------------------------------------
async def cmd_migrate(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg, migrate=True) as store:
        pending = await store.pending_migrations()
    print("schema is current" + (f" (pending: {pending})" if pending else ""))
    return EXIT_OK


async def cmd_resync(cfg: Config, args: argparse.Namespace) -> int:
    from syncd.engine import Engine, default_replica

    if not args.all and not args.user:
        print("syncd resync: say which users: --all, or --user ID (repeatable)", file=sys.stderr)
        return EXIT_USAGE
    if args.user and not args.provider:
        print("syncd resync: --user needs --provider", file=sys.stderr)
        return EXIT_USAGE
    if args.wait and (args.dry_run or args.enqueue):
        print("syncd resync: --wait is for an inline resync, not --dry-run or --enqueue", file=sys.stderr)
        return EXIT_USAGE
    if _reject_ids("syncd resync", args.user):
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
            for name in names:
                n = await store.make_due(name, only)
                await store.notify_resync(name)
                print(f"{name}: {n} target(s) marked due; running daemons will sync them now")
            return EXIT_OK
        failed = skipped = False
        async with engine:
            for name in names:
                if args.dry_run:
                    report = await _with_progress(engine.dry_run, name, only, store)
                    for uid, change, ops in report.diffs:
                        print(
                            jsonutil.dumps({"provider": name, "user_id": uid, "change": change, "patch": ops})
                        )
                    print(report.summary() + " (dry run: nothing written)", file=sys.stderr)
                    continue
                await store.make_due(name, only)
                report = await _with_progress(engine.sync, name, only, store, trigger="resync")
                print(report.summary() + (f" [{report.status}: {report.error}]" if report.error else ""))
                failed |= report.status != "ok" or report.counts["failed"] > 0
                # lease_due skips targets another replica leases (a killed resync's, a
                # running daemon's): say so, and with --wait, wait for them and sync them
                held = await store.leased_elsewhere(name, engine.replica, only)
                waited = None
                if held[0] and args.wait:
                    waited_for = held[0]
                    held, waited = await _wait_for_leases(
                        store, name, engine.replica, only, cfg.sync.lease, held
                    )
                    if held[0] < waited_for:  # some (or all) were released or ran out: sync them
                        report = await _with_progress(
                            engine.sync, name, only, store, trigger="resync", total=waited_for - held[0]
                        )
                        print(
                            report.summary() + (f" [{report.status}: {report.error}]" if report.error else "")
                        )
                        failed |= report.status != "ok" or report.counts["failed"] > 0
                        held = await store.leased_elsewhere(name, engine.replica, only)
                if held[0]:
                    skipped = True
                    print(_leased_message(name, held, waited))
    if failed:
        return EXIT_FAIL
    return EXIT_ATTENTION if skipped else EXIT_OK


#: `resync --wait` waits at most this long beyond a lease length
RESYNC_WAIT_MARGIN = 5.0
#: how often `resync --wait` looks at the leases (seconds)
RESYNC_WAIT_POLL = 1.0


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
    budget = min(max(held[2], 0.0), lease) + RESYNC_WAIT_MARGIN
    deadline = loop.time() + budget
    tty = sys.stderr.isatty()
    shown_n, shown_at = -1, float("-inf")
    while held[0]:
        now = loop.time()
        if now >= deadline:
            break
        if tty or held[0] != shown_n or now - shown_at >= 10:
            line = (
                f"{name}: waiting for {held[0]} target(s) leased by another replica ({_owners(held[3])})"
                f" until {_fmt_utc(held[1])} (gives up in {deadline - now:.0f} s)"
            )
            print(f"\r\x1b[K{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
            shown_n, shown_at = held[0], now
        # wake just after the last lease ends, and at least every RESYNC_WAIT_POLL
        await asyncio.sleep(min(RESYNC_WAIT_POLL, max(held[2], 0.0) + 0.05, deadline - now))
        held = await store.leased_elsewhere(name, owner, only)
    if tty and shown_n >= 0:
        print(file=sys.stderr)
    return held, budget


def _owners(owners: Sequence[str]) -> str:
    shown = ", ".join(owners[:3])
    return shown + (f" and {len(owners) - 3} more" if len(owners) > 3 else "") if owners else "unknown"


def _fmt_utc(value: Any) -> str:
    from datetime import UTC

    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _leased_message(name: str, held: LeasedElsewhere, waited: float | None) -> str:
    n, until, _, owners = held
    text = f"{name}: {n} target(s) leased by another replica ({_owners(owners)}) until {_fmt_utc(until)}; "
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


#: bad ids or lines named in an error, at most
MAX_BAD_SHOWN = 10


def _reject_ids(command: str, ids: Sequence[str]) -> bool:
    """Print why any of these ids given on the command line can't be a user
    id; True if one can't."""
    from syncd import targetsfile

    bad = [(v, p) for v in ids if (p := targetsfile.id_problem(v))]
    for value, problem in bad[:MAX_BAD_SHOWN]:
        print(f"{command}: bad user id {targetsfile.shown(value)}: {problem}", file=sys.stderr)
    if len(bad) > MAX_BAD_SHOWN:
        print(f"{command}: … and {len(bad) - MAX_BAD_SHOWN} more bad user id(s)", file=sys.stderr)
    return bool(bad)


async def cmd_targets(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg) as store:
        if args.action == "list":
            rows = await store.list_targets(args.provider, limit=args.limit)
            _print_table(
                [
                    (
                        r["provider"],
                        r["user_id"],
                        _fmt_time(r["next_sync_at"]),
                        _fmt_time(r["last_synced_at"]),
                        r["last_status"] or "-",
                        (r["last_error"] or "")[:60],
                    )
                    for r in rows
                ],
                ["PROVIDER", "USER", "NEXT SYNC", "LAST SYNC", "STATUS", "ERROR"],
            )
            return EXIT_OK
        if not args.provider:
            print(f"syncd targets {args.action}: --provider is required", file=sys.stderr)
            return EXIT_USAGE
        cfg.provider(args.provider)
        command = f"syncd targets {args.action}"
        ids = list(args.user_ids)
        if _reject_ids(command, ids):
            return EXIT_USAGE
        if args.file:
            from syncd import targetsfile

            try:
                data = await asyncio.to_thread(Path(args.file).read_bytes)
            except OSError as exc:
                print(f"{command}: --file {args.file}: {exc.strerror or exc}", file=sys.stderr)
                return EXIT_USAGE
            parsed = targetsfile.parse(data)
            if parsed.bad:
                print(f"{command}: {args.file}: {len(parsed.bad)} bad line(s):", file=sys.stderr)
                for number, reason in parsed.bad[:MAX_BAD_SHOWN]:
                    print(f"  line {number}: {reason}", file=sys.stderr)
                if len(parsed.bad) > MAX_BAD_SHOWN:
                    print(f"  … and {len(parsed.bad) - MAX_BAD_SHOWN} more", file=sys.stderr)
                done = "added" if args.action == "add" else "removed"
                if not args.skip_bad:
                    print(
                        f"{command}: nothing was {done}; fix those lines, or pass --skip-bad to"
                        f" {args.action} the {len(parsed.ids)} good id(s)",
                        file=sys.stderr,
                    )
                    return EXIT_USAGE
                print(f"{command}: --skip-bad: {len(parsed.bad)} bad line(s) skipped", file=sys.stderr)
            ids += parsed.ids
        ids = list(dict.fromkeys(ids))
        if not ids:
            print(f"syncd targets {args.action}: give user ids (or --file)", file=sys.stderr)
            return EXIT_USAGE
        if args.action == "add":
            await store.add_targets(args.provider, ids)
            print(f"{args.provider}: {len(ids)} target(s) added (due now)")
        else:
            n = await store.remove_targets(args.provider, ids)
            print(f"{args.provider}: {n} target(s) removed (mirror rows are kept)")
    return EXIT_OK


def _pause_cell(until: Any, reason: str | None) -> str:
    if until is None or until <= utcnow():
        return "-"
    return f"{_fmt_time(until)} ({reason})" if reason else _fmt_time(until)


async def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg) as store:
        rows = await store.provider_status([p.name for p in cfg.providers])
        runs = await store.recent_runs(args.runs)
        errors = await store.recent_errors(10)
        quarantined = await store.quarantined_targets(20)
    _print_table(
        [
            (
                r["provider"],
                r["targets"],
                r["due"],
                r["leased"],
                r["mirrored"],
                r["deleted"],
                r["errors"],
                r["quarantined"],
                r["pending_deletions"],
                _fmt_time(r["last_sync"]),
                _pause_cell(r["paused_until"], r["pause_reason"]),
                r["circuit"] or "closed",
            )
            for r in rows
        ],
        [
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
        ],
    )
    if runs:
        print("\nrecent sync passes:")
        _print_table(
            [
                (
                    r["id"],
                    r["provider"],
                    r["trigger"],
                    _fmt_time(r["started_at"]),
                    r["status"],
                    r["fetched"],
                    r["created"],
                    r["updated"],
                    r["deleted"],
                    r["unchanged"],
                    r["failed"],
                    r["held"],
                )
                for r in runs
            ],
            [
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
            ],
        )
    if errors:
        print("\nfailing targets:")
        _print_table(
            [(r["provider"], r["user_id"], r["attempts"], (r["last_error"] or "")[:90]) for r in errors],
            ["PROVIDER", "USER", "ATTEMPTS", "ERROR"],
        )
    if quarantined:
        print("\nquarantined users (their document keeps being refused; retried at the interval):")
        _print_table(
            [(r["provider"], r["user_id"], r["attempts"], (r["last_error"] or "")[:90]) for r in quarantined],
            ["PROVIDER", "USER", "ATTEMPTS", "ERROR"],
        )
    return EXIT_OK


async def cmd_check(cfg: Config, args: argparse.Namespace) -> int:
    print(f"config: {cfg.source}: ok ({len(cfg.providers)} provider(s))")
    ok = True
    async with contextlib.AsyncExitStack() as stack:
        store = None
        try:
            # connects and checks the schema
            store = await stack.enter_async_context(open_store(cfg, migrate=False))
            print("database: reachable, schema current")
        except SyncdError as exc:
            print(f"database: FAILED: {exc}")
            ok = False
        for pc in cfg.providers:
            ok &= await _check_provider(pc, store)
    return EXIT_OK if ok else EXIT_FAIL


async def _check_provider(pc: ProviderBase, store: Store | None) -> bool:
    """One provider's credentials, proven by an authenticated read of the
    right shape (``Provider.check``: any 404 or unexpected body fails, and the
    line names the URL tried), within its shared Retry-After pause: a paused
    provider is not contacted, and a 429 the check gets is shared with the
    daemons (not waited out here)."""
    from syncd.providers.base import CheckFailed
    from syncd.sync.pauses import share_pause
    from syncd.sync.runtime import open_runtime

    label = f"provider {pc.name} ({pc.type})"  # type: ignore[attr-defined]
    if store is not None:
        until = await store.get_pause(pc.name)
        if until is not None and until > utcnow():
            print(f"{label}: NOT CHECKED: paused by the provider's Retry-After until {until.isoformat()}")
            return False
    try:
        rt = open_runtime(pc)
    except ConfigError as exc:
        print(f"provider {pc.name}: FAILED: {exc}")
        return False
    rt.client.policy = replace(rt.client.policy, max_rate_limit_waits=0, max_attempts=1)
    if store is not None:
        rt.gate.on_pause = share_pause(store, pc.name)
    try:
        proof = await rt.adapter.check()
        print(f"{label}: credentials accepted: {proof}")
        return True
    except CheckFailed as exc:
        # the credentials' refusal is named as such, whatever the step that refused them
        # (a token endpoint says "credentials refused by the token endpoint")
        reason = str(exc)
        if exc.credentials_rejected and not reason.startswith("credentials rejected"):
            reason = f"credentials rejected: {reason}"
        print(f"{label}: FAILED: {reason} ({exc.tried})")
        return False
    except (ProviderError, ConfigError) as exc:
        print(f"{label}: FAILED: {exc}")
        return False
    finally:
        await rt.close()


async def cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    from syncd.daemon import run_daemon

    return await run_daemon(cfg, listen=args.listen)


async def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from syncd.demo import run_demo

    return await run_demo(state_dir=args.state_dir, users=args.users)


async def cmd_deletions(cfg: Config, args: argparse.Namespace) -> int:
    from syncd.engine import Engine, default_replica

    cfg.provider(args.provider)
    async with open_store(cfg) as store:
        pending = await store.pending_deletions(args.provider)
        ids = [r["user_id"] for r in pending]
        if args.action == "list" or not ids:
            _print_table(
                [(args.provider, r["user_id"], _fmt_time(r["detected_at"])) for r in pending],
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


async def cmd_pause(cfg: Config, args: argparse.Namespace) -> int:
    """`syncd pause clear --provider P`: end a provider's pause for every
    replica (they re-read provider_state on the notification and drop theirs)."""
    cfg.provider(args.provider)
    async with open_store(cfg) as store:
        was = await store.clear_pause(args.provider)
    if was is not None and was > utcnow():
        print(f"{args.provider}: pause until {_fmt_time(was)} cleared; replicas resume now")
    else:
        print(f"{args.provider}: was not paused")
    return EXIT_OK


async def cmd_outbox(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg) as store:
        if args.action == "prune":
            seconds = parse_duration(args.older_than)
            events = await store.prune_outbox(seconds, include_unprocessed=args.include_unprocessed)
            runs = await store.prune_runs(seconds)
            print(f"pruned {events} event(s) and {runs} sync run(s) older than {args.older_than}")
            return EXIT_OK
        # claim: print a batch as JSON lines and mark it processed, in one transaction
        await store.claim_events(args.limit, _print_events, mark=not args.peek)
    return EXIT_OK


def _print_events(rows: Sequence[Any]) -> None:
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


# -- parser -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description="Asynchronous identity sync daemon.")
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument(
            "--config", metavar="PATH", help="config file (default: $SYNCD_CONFIG, then ./syncd.toml)"
        )
        return p

    add("migrate", "create or upgrade the database schema (idempotent)")
    p = add("run", "run the daemon")
    p.add_argument("--listen", metavar="HOST:PORT", help="health/metrics address (default [daemon] listen)")
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
    p.add_argument("--limit", type=int, default=1000)
    p = add("status", "per provider: targets, due, last sync, errors")
    p.add_argument("--runs", type=int, default=10, help="recent passes to show")
    add("check", "validate config, reach the database, prove each provider's credentials")
    p = add("demo", "embedded Postgres + simulated providers, no setup at all")
    p.add_argument("--state-dir", default=".syncd/demo", help="where the demo keeps its database")
    p.add_argument("--users", type=int, default=24, help="users per simulated provider")
    p = add("deletions", "deletions held by the mass-deletion guard")
    p.add_argument("action", choices=["list", "approve", "reject"])
    p.add_argument("--provider", metavar="NAME", required=True)
    p = add("pause", "a provider's shared Retry-After pause (every replica obeys it)")
    p.add_argument("action", choices=["clear"])
    p.add_argument("--provider", metavar="NAME", required=True)
    p = add("outbox", "read the outbox, or prune old events and sync_runs rows")
    p.add_argument("action", choices=["claim", "prune"])
    p.add_argument("--limit", type=int, default=100, help="claim: events per batch")
    p.add_argument("--peek", action="store_true", help="claim: print without marking processed")
    p.add_argument("--older-than", default="7d", help="prune: age, e.g. 7d")
    p.add_argument("--include-unprocessed", action="store_true", help="prune: also unprocessed events")
    return parser


COMMANDS = {
    "migrate": cmd_migrate,
    "run": cmd_run,
    "resync": cmd_resync,
    "targets": cmd_targets,
    "status": cmd_status,
    "check": cmd_check,
    "demo": cmd_demo,
    "deletions": cmd_deletions,
    "outbox": cmd_outbox,
    "pause": cmd_pause,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse can't take positionals after options in a subcommand: ids may come anywhere
    if args.command == "targets" and extra and not any(e.startswith("-") for e in extra):
        args.user_ids = [*args.user_ids, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        cfg = Config() if args.command == "demo" else config_mod.load(args.config)
    except ConfigError as exc:
        print(f"syncd: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    daemon = args.command == "run"
    logs.configure(
        cfg.logging.level if daemon else "warning",
        cfg.logging.format,
        stream=sys.stdout if daemon else sys.stderr,
    )
    if args.command in ("run", "check"):
        logs.warn_config(cfg)  # e.g. credentials over http:// to a loopback host
    if args.command in ("run", "resync", "demo"):
        tune_gc()
    try:
        return asyncio.run(COMMANDS[args.command](cfg, args))
    except ConfigError as exc:
        print(f"syncd: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreUnavailable as exc:
        print(f"syncd: database unavailable: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except SyncdError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
