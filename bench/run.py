"""Throughput, round trips and memory of a full resync.

    python -m bench [--users 100000] [--concurrency 64] [--batch-size 1000] [--rounds 5]

Starts a fake ZITADEL in its own process and a database (embedded unless
``$SYNCD_DATABASE_URL``), then measures: fetch-only (the ceiling: the same
HTTP fetching with nothing else), first sync (every user created), a
no-change resync, and a resync with 1% of users changed upstream.

The phases run in ``--rounds`` rounds, each one every phase back to back (a
first sync on an emptied mirror each time), with a second fetch-only run right
after the first sync: the first sync is compared with the fetch-only runs just
before and just after it, the resyncs with the one after. The round with the
median ratio to fetch-only is reported: on a shared machine whose speed
drifts, runs seconds apart compare fairly, runs minutes apart don't.
``--verbose`` prints every run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
import structlog

from bench.common import (
    cpu_seconds_by_process,
    fake_process,
    fresh_database,
    machine,
    peak_rss_mb,
    rss_mb,
)
from syncd import config as config_mod
from syncd import logs
from syncd.engine import Engine
from syncd.process import tune_gc
from syncd.store import Store
from syncd.sync.runtime import open_runtime

TOKEN_ENV = "SYNCD_BENCH_TOKEN"
T = TypeVar("T")
PHASES = ("first sync", "no-change resync", "1% change resync")


@dataclass
class Run:
    seconds: float
    cpu: dict[str, float]  # CPU seconds per process during the run
    trips_per_1000: float | None = None
    counts: dict[str, int] = field(default_factory=dict)


async def fetch_only(cfg: config_mod.Config, store: Store, batch_size: int) -> float:
    """The ceiling: the same HTTP client, gate and JSON parsing as a sync, and
    nothing else. ``concurrency`` workers take ids from a queue that a reader
    fills from the targets a page at a time, so no request waits for the
    database or for a batch's slowest request."""
    rt = open_runtime(cfg.providers[0])
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=2 * batch_size)
    workers = rt.config.concurrency

    async def read_ids() -> None:
        after = ""
        while page := await store.pool.fetch(
            "SELECT user_id FROM syncd.targets WHERE provider = 'bench' AND user_id > $1"
            " ORDER BY user_id LIMIT $2",
            after,
            batch_size,
        ):
            after = page[-1]["user_id"]
            for r in page:
                await queue.put(r["user_id"])
        for _ in range(workers):
            await queue.put(None)

    async def work() -> None:
        while (user_id := await queue.get()) is not None:
            await rt.client.get_json(f"{rt.config.base_url}/v2/users/{user_id}")

    try:
        started = time.perf_counter()
        await asyncio.gather(read_ids(), *(work() for _ in range(workers)))
        return time.perf_counter() - started
    finally:
        await rt.close()


async def add_targets(store: Store, url: str, users: int) -> None:
    """Register the fake's users as targets, a page at a time: the benchmark
    process holds no list of all ids, so its peak RSS is syncd's."""
    async with aiohttp.ClientSession() as s:
        for offset in range(0, users, 10_000):
            async with s.get(f"{url}/_fake/ids", params={"offset": offset, "limit": 10_000}) as r:
                await store.add_targets("bench", await r.json())


async def settle(store: Store) -> None:
    """Each run is measured in steady state, as it happens in production long
    after the previous one: the last run's WAL and dead rows are dealt with first."""
    await store.pool.execute("CHECKPOINT")
    await store.pool.execute("VACUUM (ANALYZE) syncd.targets, syncd.users, syncd.outbox")


async def forget_everything(store: Store) -> None:
    """Back to before the first sync: an empty mirror and outbox, targets never synced."""
    await store.pool.execute("TRUNCATE syncd.users, syncd.outbox, syncd.sync_runs")
    await store.pool.execute(
        "UPDATE syncd.targets SET body_hash = NULL, last_synced_at = NULL, last_status = NULL,"
        " last_error = NULL, attempts = 0"
    )


async def measured(work: Callable[[], Awaitable[T]]) -> tuple[float, dict[str, float], T]:
    """Wall time, CPU seconds per process, and the result of ``work()``."""
    cpu0 = cpu_seconds_by_process()
    started = time.perf_counter()
    result = await work()
    elapsed = time.perf_counter() - started
    cpu1 = cpu_seconds_by_process()
    return elapsed, {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}, result


async def bench(users: int, concurrency: int, batch_size: int, rounds: int, verbose: bool) -> None:
    logs.configure("warning", "console")
    async with fake_process("zitadel", users, plain=True) as url, fresh_database() as db_url:
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
        store = await Store.connect(db_url, min_size=2, max_size=4)
        await store.migrate()
        await add_targets(store, url, users)
        print(
            f"syncd benchmark: {users} users, concurrency {concurrency}, batch {batch_size}, {rounds} rounds"
        )
        print(f"machine: {machine()}")

        runs: dict[str, list[Run]] = {name: [] for name in ("fetch-only", *PHASES)}
        #: per phase and round, the fetch-only seconds it is compared with
        reference: dict[str, list[float]] = {name: [] for name in ("fetch-only", *PHASES)}

        async def run_fetch_only(round_: int) -> Run:
            await settle(store)
            elapsed, cpu, _ = await measured(lambda: fetch_only(cfg, store, batch_size))
            run = Run(elapsed, cpu)
            if verbose:
                show(round_, "fetch-only", run, users)
            return run

        async with Engine(store, cfg, replica="bench") as engine:
            for round_ in range(rounds):
                if round_:
                    await forget_everything(store)
                before = after = await run_fetch_only(round_)
                runs["fetch-only"].append(before)
                reference["fetch-only"].append(before.seconds)
                for name in PHASES:
                    changed = None
                    if name == "1% change resync":
                        async with (
                            aiohttp.ClientSession() as s,
                            s.post(f"{url}/_fake/modify?fraction=0.01") as r,
                        ):
                            changed = (await r.json())["changed"]
                    await settle(store)
                    await store.make_due("bench", None)
                    trips = store.round_trips
                    elapsed, cpu, report = await measured(lambda: engine.sync("bench", trigger="resync"))
                    counts = report.counts
                    run = Run(elapsed, cpu, (store.round_trips - trips) / users * 1000, counts)
                    runs[name].append(run)
                    if verbose:
                        show(round_, name, run, users)
                    if changed is not None:
                        assert counts["updated"] == changed, (counts, changed)
                    if name == "first sync":
                        assert counts["created"] == users, counts
                        # the machine's speed drifts within a minute: the first sync
                        # is compared with fetch-only runs right before and right after
                        # it, and the resyncs with the one after
                        after = await run_fetch_only(round_)
                        reference[name].append((before.seconds + after.seconds) / 2)
                    else:
                        reference[name].append(after.seconds)
        await store.close()

        # each round's ratios compare runs made within a minute of each other; the
        # median round is reported (the machine's speed drifts between rounds)
        def ratios(name: str) -> list[float]:
            return [f / r.seconds for f, r in zip(reference[name], runs[name], strict=True)]

        print(
            f"\n{'phase':<18} {'seconds':>8} {'users/s':>9} {'x fetch':>8} {'SQL trips/1k':>13}"
            f"   CPU µs/user: {'syncd':>6} {'provider':>9} {'postgres':>9}  outcome"
        )
        for name, rs in runs.items():
            median = statistics.median_low(ratios(name))
            run = rs[ratios(name).index(median)]
            outcome = ", ".join(f"{k} {v}" for k, v in run.counts.items() if v)
            trips_text = "" if run.trips_per_1000 is None else f"{run.trips_per_1000:.1f}"
            per_user = {k: v / users * 1e6 for k, v in run.cpu.items()}
            print(
                f"{name:<18} {run.seconds:>8.1f} {users / run.seconds:>9.0f} {median:>8.2f}"
                f" {trips_text:>13}                {per_user.get('syncd', 0):>6.0f}"
                f" {per_user.get('provider', 0):>9.0f} {per_user.get('postgres', 0):>9.0f}  {outcome}"
            )
        if rounds > 1:
            print("\nx fetch of each round:")
            for name in PHASES:
                print(f"  {name:<18} " + "  ".join(f"{x:.2f}" for x in ratios(name)))
        print(f"peak RSS of the syncd process: {peak_rss_mb():.0f} MB")


def show(round_: int, name: str, run: Run, users: int) -> None:
    cpu = ", ".join(f"{k} {v:.2f}s" for k, v in run.cpu.items())
    print(
        f"  round {round_ + 1}  {name:<18} {run.seconds:6.2f}s {users / run.seconds:8.0f}/s  CPU: {cpu};"
        f" RSS {rss_mb():.0f} MB (peak {peak_rss_mb():.0f})"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5, help="rounds of all phases; the median round counts")
    p.add_argument("--verbose", action="store_true", help="print every run")
    args = p.parse_args()
    if args.rounds < 1 or args.users < 1:
        p.error("--users and --rounds must be at least 1")
    structlog.configure()
    tune_gc()  # as `syncd run` and `syncd resync` do
    asyncio.run(bench(args.users, args.concurrency, args.batch_size, args.rounds, args.verbose))
    return 0
