"""``syncd demo``: the whole path on an embedded Postgres and simulated
providers (real HTTP servers on 127.0.0.1), with no setup at all."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import TYPE_CHECKING, Any

from syncd import config as config_mod
from syncd import embedded
from syncd.cli.command import AddCommand
from syncd.cli.output import print_table
from syncd.config import Config
from syncd.store import Store, recreate_database

if TYPE_CHECKING:
    from syncd.engine import Engine
    from syncd.testing.fake import FakeProvider

DEMO_DB = "syncd_demo"


def add_parser(add: AddCommand) -> None:
    p = add("demo", "embedded Postgres + simulated providers, no setup at all")
    p.add_argument("--state-dir", default=".syncd/demo", help="where the demo keeps its database")
    p.add_argument("--users", type=int, default=24, help="users per simulated provider")
    p.add_argument(
        "--keep", action="store_true", help="keep the embedded PostgreSQL running for psql until Ctrl-C"
    )
    p.set_defaults(handler=cmd_demo)


async def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    return await run_demo(state_dir=args.state_dir, users=args.users, keep=args.keep)


def _print(*args: Any) -> None:
    print(*args, flush=True)


async def run_demo(state_dir: str = ".syncd/demo", users: int = 24, *, keep: bool = False) -> int:
    """The demo's story; the embedded server stops when it ends (the process
    holds it), unless ``keep``: then it serves until SIGINT or SIGTERM."""
    from syncd.engine import Engine
    from syncd.testing.dialects import DIALECTS, fake

    server = await asyncio.to_thread(embedded.start, state_dir)
    # a fresh database each run, so the demo tells the same story every time
    await recreate_database(embedded.url(server), DEMO_DB)
    fakes = {ptype: fake(ptype) for ptype in DIALECTS}
    cfg = await _start_providers(fakes)
    store = await Store.connect(embedded.url(server, DEMO_DB))
    try:
        await store.migrate()
        async with Engine(store, cfg, replica="demo") as engine:
            _print(f"syncd demo: embedded PostgreSQL at {state_dir}, {len(fakes)} simulated provider(s)\n")
            await _tell_the_story(engine, store, fakes, users)
        await _show_mirror(store, fakes)
        await _show_outbox(store)
    finally:
        await store.close()
        for f in fakes.values():
            await f.stop()
    psql = f"psql '{embedded.url(server, DEMO_DB)}'"
    if not keep:
        # the server lives as long as this process: a psql line alone would point at nothing
        _print("\ndone. The embedded PostgreSQL stops with the demo; to look around in it, run")
        _print("`syncd demo --keep`: it stays up for psql until Ctrl-C.")
        return 0
    _print(f"\ndone. Inspect it: {psql}")
    _print("The embedded PostgreSQL keeps running until Ctrl-C.")
    await _until_stopped()
    _print("stopped.")
    return 0


async def _until_stopped() -> None:
    """Wait for Ctrl-C (SIGINT) or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _start_providers(fakes: dict[str, FakeProvider]) -> Config:
    """Start the simulated providers; the config that syncs them."""
    providers = []
    for ptype, f in fakes.items():
        await f.start()
        env = f"SYNCD_DEMO_{ptype.upper()}_TOKEN"
        os.environ[env] = f.token
        config = {**f.provider_config(f"demo-{ptype}", token_env=env), "concurrency": 8, "discover": "1h"}
        providers.append(config)
    return config_mod.from_dict(
        {
            "providers": providers,
            # the demo deletes users on the first 404 and allows a large share of deletions
            "sync": {"delete_confirmations": 1, "max_delete_fraction": 0.5},
        },
        source="<demo>",
    )


async def _tell_the_story(engine: Engine, store: Store, fakes: dict[str, FakeProvider], users: int) -> None:
    """Discovery enrols every user, a pass creates them; upstream changes,
    deletions and a new user; discovery again, a pass; then nothing changed."""
    for f in fakes.values():
        f.seed(users)
    await _discover(engine, fakes, "1. discovery: list each provider's users, enrol them as targets")
    await _pass(engine, store, fakes, "2. first sync: every user is new")

    changed: list[str] = []
    for ptype, f in fakes.items():
        ids = sorted(f.users)
        for uid in ids[:3]:
            f.modify(uid)
        for uid in ids[-2:]:
            del f.users[uid]
        [added] = f.seed(1, start=users)
        changed.append(f"{ptype}: changed {ids[0]} and 2 more; deleted {ids[-1]} and 1 more; added {added}")
    _print("   upstream " + "\n   upstream ".join(changed) + "\n")
    await store.make_discovery_due(None)
    await _discover(
        engine, fakes, "3. discovery again: one new user each, two missing (a listing deletes no one)"
    )
    await _pass(engine, store, fakes, "4. resync: the missing users answer 404 by id, so they are deleted")
    await _pass(engine, store, fakes, "5. resync with nothing changed upstream")


async def _discover(engine: Engine, fakes: dict[str, FakeProvider], title: str) -> None:
    _print(title)
    for ptype in fakes:
        report = await engine.discover(f"demo-{ptype}")
        _print(
            f"   demo-{ptype}: listing {report.verdict}, listed {report.listed}, new {report.new},"
            f" missing {report.missing}, unchanged {report.unchanged}"
        )
    _print()


async def _pass(engine: Engine, store: Store, fakes: dict[str, FakeProvider], title: str) -> None:
    _print(title)
    for ptype in fakes:
        name = f"demo-{ptype}"
        await store.make_due(name, None)
        report = await engine.sync(name, trigger="demo")
        _print("   " + report.summary())
    _print()


async def _show_mirror(store: Store, fakes: dict[str, FakeProvider]) -> None:
    rows = [r for ptype in fakes for r in await store.mirror_sample(f"demo-{ptype}", limit=2)]
    _print("mirror (syncd.users, 2 rows per provider):")
    print_table(
        [
            (
                r["provider"],
                r["user_id"],
                r["username"],
                r["display_name"],
                r["email"],
                r["kind"],
                "deleted" if r["deleted_at"] else "active" if r["active"] else "inactive",
            )
            for r in rows
        ],
        ["PROVIDER", "USER", "USERNAME", "DISPLAY NAME", "EMAIL", "KIND", "STATE"],
    )


async def _show_outbox(store: Store) -> None:
    counts = await store.event_counts()
    _print("\noutbox events by type: " + ", ".join(f"{r['type']}={r['n']}" for r in counts))
    events = await store.sample_events()
    _print("an update and a deletion of each provider (syncd.outbox):")
    print_table(
        [(r["type"], r["aggregateid"], _short_patch(r["payload"]["patch"])) for r in events],
        ["TYPE", "AGGREGATEID", "PATCH"],
    )


def _short_patch(ops: list[dict[str, Any]]) -> str:
    """The first two operations of a JSON Patch, values cut short."""
    parts = []
    for op in ops[:2]:
        value = op.get("value")
        shown = "" if op["op"] == "remove" or isinstance(value, dict | list) else f" {str(value)[:24]!r}"
        parts.append(f"{op['op']} {op['path']}{shown}")
    more = f" (+{len(ops) - 2} more)" if len(ops) > 2 else ""
    return "; ".join(parts) + more
