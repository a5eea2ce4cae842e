"""Throughput, round trips and memory of a full resync.

    python -m bench [--users 100000] [--concurrency 64] [--batch-size 1000]

Starts a fake ZITADEL in its own process and a database (embedded unless
``$SYNCD_DATABASE_URL``), then measures: fetch-only (the ceiling: the same
HTTP fetching with nothing else), first sync (every user created), a
no-change resync, and a resync with 1% of users changed upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time

import aiohttp
import structlog

from bench.common import fake_process, fresh_database, machine, peak_rss_mb
from syncd import config as config_mod
from syncd import logs
from syncd.engine import Engine, open_runtime
from syncd.process import tune_gc
from syncd.store import Store

TOKEN_ENV = "SYNCD_BENCH_TOKEN"


def cpu_seconds() -> float:
    """CPU time of this (the syncd) process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def fetch_only(cfg: config_mod.Config, ids: list[str], batch_size: int) -> float:
    """The same HTTP client, gate and JSON parsing as a sync, and nothing else."""
    rt = open_runtime(cfg.providers[0])
    try:
        started = time.perf_counter()
        for i in range(0, len(ids), batch_size):
            await asyncio.gather(
                *(rt.client.get_json(f"{rt.config.base_url}/v2/users/{u}") for u in ids[i : i + batch_size])
            )
        return time.perf_counter() - started
    finally:
        await rt.close()


async def phase(engine: Engine, store: Store, name: str, n: int) -> tuple[float, float, dict[str, int]]:
    # each phase is measured in steady state, as it happens in production long
    # after the previous one: the last phase's WAL and dead rows are settled first
    await store.pool.execute("CHECKPOINT")
    await store.pool.execute("VACUUM (ANALYZE) syncd.targets, syncd.users")
    await store.make_due("bench", None)
    trips = store.round_trips
    started = time.perf_counter()
    report = await engine.sync("bench", trigger="resync")
    elapsed = time.perf_counter() - started
    per_1000 = (store.round_trips - trips) / n * 1000
    return elapsed, per_1000, report.counts


async def bench(users: int, concurrency: int, batch_size: int) -> None:
    logs.configure("warning", "console")
    async with fake_process("zitadel", users) as url, fresh_database() as db_url:
        os.environ[TOKEN_ENV] = "fake-token"
        cfg = config_mod.from_dict(
            {
                "sync": {"batch_size": batch_size},
                "providers": [
                    {
                        "name": "bench",
                        "type": "zitadel",
                        "base_url": url,
                        "token_env": TOKEN_ENV,
                        "concurrency": concurrency,
                    }
                ],
            }
        )
        async with aiohttp.ClientSession() as s, s.get(f"{url}/_fake/ids") as r:
            ids = await r.json()
        store = await Store.connect(db_url, min_size=2, max_size=4)
        await store.migrate()
        await store.add_targets("bench", ids)
        print(f"syncd benchmark: {users} users, concurrency {concurrency}, batch {batch_size}")
        print(f"machine: {machine()}")

        cpu0 = cpu_seconds()
        t_fetch = await fetch_only(cfg, ids, batch_size)
        cpu_fetch = cpu_seconds() - cpu0
        ceiling = users / t_fetch
        rows = [("fetch-only", t_fetch, None, None, cpu_fetch)]
        async with Engine(store, cfg, replica="bench") as engine:
            for name in ("first sync", "no-change resync", "1% change resync"):
                if name == "1% change resync":
                    async with aiohttp.ClientSession() as s, s.post(f"{url}/_fake/modify?fraction=0.01") as r:
                        changed = (await r.json())["changed"]
                cpu0 = cpu_seconds()
                elapsed, trips, counts = await phase(engine, store, name, users)
                rows.append((name, elapsed, trips, counts, cpu_seconds() - cpu0))
        await store.close()

        print(
            f"\n{'phase':<18} {'seconds':>8} {'users/s':>9} {'x fetch':>8} {'SQL trips/1k':>13} "
            f"{'CPU µs/user':>12}  outcome"
        )
        for name, elapsed, trips, counts, cpu in rows:
            rate = users / elapsed
            outcome = "" if counts is None else ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            print(
                f"{name:<18} {elapsed:>8.1f} {rate:>9.0f} {rate / ceiling:>8.2f} "
                f"{'' if trips is None else f'{trips:.1f}':>13} {cpu / users * 1e6:>12.0f}  {outcome}"
            )
        if users and rows[3][3] is not None:
            assert rows[3][3]["updated"] == changed, (rows[3][3], changed)
        print(f"\npeak RSS of the syncd process: {peak_rss_mb():.0f} MB")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=1000)
    args = p.parse_args()
    structlog.configure()
    tune_gc()  # as `syncd run` and `syncd resync` do
    asyncio.run(bench(args.users, args.concurrency, args.batch_size))
    return 0
