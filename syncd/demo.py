"""``syncd demo``: the whole path on an embedded Postgres and simulated
providers (real HTTP servers on 127.0.0.1), with no setup at all."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import asyncpg

from syncd import config as config_mod
from syncd import embedded
from syncd.engine import Engine
from syncd.store import Store
from syncd.testing.dialects import DIALECTS, fake

DEMO_DB = "syncd_demo"


def _print(*args: Any) -> None:
    print(*args, flush=True)


async def run_demo(state_dir: str = ".syncd/demo", users: int = 24) -> int:
    server = await asyncio.to_thread(embedded.start, state_dir)
    admin = await asyncpg.connect(embedded.url(server))
    try:  # a fresh database each run, so the demo tells the same story every time
        await admin.execute(f"DROP DATABASE IF EXISTS {DEMO_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {DEMO_DB}")
    finally:
        await admin.close()

    fakes = {ptype: fake(ptype) for ptype in DIALECTS}
    providers = []
    for ptype, f in fakes.items():
        await f.start()
        env = f"SYNCD_DEMO_{ptype.upper()}_TOKEN"
        os.environ[env] = f.token
        providers.append({**f.provider_config(f"demo-{ptype}", token_env=env), "concurrency": 8})
    cfg = config_mod.from_dict(
        {
            "providers": providers,
            # the demo deletes users on the first 404 and allows a large share of deletions
            "sync": {"delete_confirmations": 1, "max_delete_fraction": 0.5},
        },
        source="<demo>",
    )
    store = await Store.connect(embedded.url(server, DEMO_DB))
    try:
        await store.migrate()
        async with Engine(store, cfg, replica="demo") as engine:
            _print(f"syncd demo: embedded PostgreSQL at {state_dir}, {len(fakes)} simulated provider(s)\n")
            for ptype, f in fakes.items():
                ids = f.seed(users)
                await store.add_targets(f"demo-{ptype}", ids)
            await _pass(engine, fakes, "1. first sync: every user is new")

            changed: list[str] = []
            for ptype, f in fakes.items():
                ids = sorted(f.users)
                for uid in ids[:3]:
                    f.modify(uid)
                for uid in ids[-2:]:
                    del f.users[uid]
                changed.append(f"{ptype}: changed {ids[0]} and 2 more; deleted {ids[-1]} and 1 more")
            _print("   upstream " + "\n   upstream ".join(changed) + "\n")
            await _pass(engine, fakes, "2. resync after upstream changes")
            await _pass(engine, fakes, "3. resync with nothing changed upstream")

        rows = [r for ptype in fakes for r in await store.mirror_sample(f"demo-{ptype}", limit=2)]
        _print("mirror (syncd.users, 2 rows per provider):")
        _table(
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
        counts = await store.event_counts()
        _print("\noutbox events by type: " + ", ".join(f"{r['type']}={r['n']}" for r in counts))
        events = await store.sample_events()
        _print("an update and a deletion of each provider (syncd.outbox):")
        _table(
            [(r["type"], r["aggregateid"], _short_patch(r["payload"]["patch"])) for r in events],
            ["TYPE", "AGGREGATEID", "PATCH"],
        )
        _print(f"\ndone. Inspect it: psql '{embedded.url(server, DEMO_DB)}'")
    finally:
        await store.close()
        for f in fakes.values():
            await f.stop()
    return 0


async def _pass(engine: Engine, fakes: dict[str, Any], title: str) -> None:
    _print(title)
    for ptype in fakes:
        name = f"demo-{ptype}"
        await engine.store.make_due(name, None)
        report = await engine.sync(name, trigger="demo")
        _print("   " + report.summary())
    _print()


def _short_patch(ops: list[dict[str, Any]]) -> str:
    parts = []
    for op in ops[:2]:
        value = op.get("value")
        shown = "" if op["op"] == "remove" or isinstance(value, dict | list) else f" {str(value)[:24]!r}"
        parts.append(f"{op['op']} {op['path']}{shown}")
    more = f" (+{len(ops) - 2} more)" if len(ops) > 2 else ""
    return "; ".join(parts) + more


def _table(rows: list[tuple[Any, ...]], headers: list[str]) -> None:
    from syncd.cli import _print_table

    _print_table(rows, headers, out=sys.stdout)
