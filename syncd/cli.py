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
from syncd.store import Store
from syncd.timeutil import parse_duration, utcnow

log = structlog.get_logger("syncd.cli")

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3


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
    from syncd.engine import Engine

    if not args.all and not args.user:
        print("syncd resync: say which users: --all, or --user ID (repeatable)", file=sys.stderr)
        return EXIT_USAGE
    if args.user and not args.provider:
        print("syncd resync: --user needs --provider", file=sys.stderr)
        return EXIT_USAGE
    names = [args.provider] if args.provider else [p.name for p in cfg.providers]
    for name in names:
        cfg.provider(name)
    if not names:
        print(f"syncd resync: no providers configured in {cfg.source}", file=sys.stderr)
        return EXIT_CONFIG
    only = list(dict.fromkeys(args.user)) if args.user else None
    async with open_store(cfg) as store:
        engine = Engine(store, cfg)
        if not args.dry_run:  # a dry run writes nothing, not even new targets
            await engine.register_config_targets()
            if only:
                await store.add_targets(names[0], only)
        if args.enqueue:
            for name in names:
                n = await store.make_due(name, only)
                await store.fetch("notify_resync", name)
                print(f"{name}: {n} target(s) marked due; running daemons will sync them now")
            return EXIT_OK
        failed = False
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
    return EXIT_FAIL if failed else EXIT_OK


async def _with_progress(fn: Any, name: str, only: Sequence[str] | None, store: Store, **kw: Any) -> Any:
    from tqdm import tqdm

    total = len(only) if only else (await store.fetch("count_targets", name))[0]["n"]
    with tqdm(total=total, desc=name, unit="user", disable=None, file=sys.stderr, leave=False) as bar:
        return await fn(name, only=only, progress=bar.update, **kw)


async def cmd_targets(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg) as store:
        if args.action == "list":
            rows = await store.fetch("list_targets", args.provider, args.limit)
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
        ids = list(args.user_ids)
        if args.file:
            text = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8")
            ids += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
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


async def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg) as store:
        rows = await store.fetch("provider_status", [p.name for p in cfg.providers])
        runs = await store.fetch("recent_runs", args.runs)
        errors = await store.fetch("recent_errors", 10)
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
                r["pending_deletions"],
                _fmt_time(r["last_sync"]),
                _fmt_time(r["paused_until"]) if r["paused_until"] else "-",
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
    """One provider's credentials, within its shared Retry-After pause: a
    paused provider is not contacted, and a 429 the check gets is shared
    with the daemons (not waited out here)."""
    from syncd.engine import open_runtime, share_pause

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
        await rt.adapter.check()
        print(f"{label}: credentials accepted")
        return True
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
    from syncd.engine import Engine

    cfg.provider(args.provider)
    async with open_store(cfg) as store:
        pending = await store.fetch("pending_deletions", args.provider)
        ids = [r["user_id"] for r in pending]
        if args.action == "list" or not ids:
            _print_table(
                [(args.provider, r["user_id"], _fmt_time(r["detected_at"])) for r in pending],
                ["PROVIDER", "USER", "DETECTED"],
            )
            if not ids:
                print(f"{args.provider}: no deletions held")
            return EXIT_OK
        async with Engine(store, cfg) as engine:
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


async def cmd_outbox(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(cfg) as store:
        if args.action == "prune":
            seconds = parse_duration(args.older_than)
            status = await store.execute("prune_outbox", seconds, args.include_unprocessed)
            runs = await store.execute("prune_runs", seconds)
            print(
                f"pruned {status.split()[-1]} event(s) and {runs.split()[-1]} sync run(s) "
                f"older than {args.older_than}"
            )
            return EXIT_OK
        # claim: print a batch as JSON lines and mark it processed, in one transaction
        async with store.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(store.q["claim_outbox"], args.limit)
            for r in rows:
                print(
                    jsonutil.dumps(
                        {
                            "id": str(r["id"]),
                            "seq": r["seq"],
                            "aggregateid": r["aggregateid"],
                            "type": r["type"],
                            "created_at": r["created_at"].isoformat(),
                            "payload": r["payload"],
                        }
                    )
                )
            if not args.peek:
                await conn.execute(store.q["mark_processed"], [r["id"] for r in rows])
    return EXIT_OK


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
    p = add("targets", "manage which users are synced")
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("user_ids", nargs="*", metavar="ID")
    p.add_argument("--provider", metavar="NAME")
    p.add_argument("--file", metavar="PATH", help="one user id per line")
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
