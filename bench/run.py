"""Throughput, round trips and memory of a full resync.

    python -m bench [--users 100000] [--concurrency 64] [--batch-size 1000] [--rounds 5]
                    [--types zitadel,webex] [--rate 50] [--client-rps 50]

Starts a fake provider in its own process (per ``--types``: ZITADEL by
default, Webex's SCIM too) and a database (embedded unless
``$SYNCD_DATABASE_URL``), then measures: bare aiohttp (the honest ceiling: a
plain ``aiohttp.ClientSession`` loop and ``orjson.loads``, nothing else),
fetch-only (our own HTTP client, gate and parsing, nothing else), first sync
(every user created), a no-change resync, and a resync with 1% of users
changed upstream. The syncs run ``engine.sync``: whatever read path syncd
takes for the provider is what gets measured.

The phases run in ``--rounds`` rounds, each one every phase back to back (a
first sync on an emptied mirror each time), with a second fetch-only and bare
run right after the first sync: the first sync is compared with the runs just
before and just after it, the resyncs with the ones after. The round with the
median ratio to fetch-only is reported: on a shared machine whose speed
drifts, runs seconds apart compare fairly, runs minutes apart don't.
``--verbose`` prints every run.

``--rate N``: the fake answers at most N requests per second (429 +
``Retry-After: 1`` beyond), and each run reports the requests it sent, how
many were answered 429, requests per user and requests that arrived before a
Retry-After instant (from the fake's ``/_fake/stats``). The bare loop has no
retries, so it is not run under a budget. ``--client-rps`` sets syncd's own
``max_rps`` for the provider.
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
import orjson
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
from syncd.errors import RateLimited
from syncd.process import tune_gc
from syncd.store import Store
from syncd.sync.runtime import open_runtime
from syncd.testing.dialects import DIALECTS
from syncd.testing.dialects.webex import WebexDialect

TOKEN_ENV = "SYNCD_BENCH_TOKEN"
T = TypeVar("T")
PHASES = ("first sync", "no-change resync", "1% change resync")
ROWS = ("bare aiohttp", "fetch-only", *PHASES)
#: the by-id read of each provider type the benchmark runs (fetch-only and bare aiohttp)
BY_ID = {
    "zitadel": "/v2/users/{}",
    "webex": f"/identity/scim/{WebexDialect.org_id}/v2/Users/{{}}",
}


@dataclass
class Run:
    seconds: float
    cpu: dict[str, float]  # CPU seconds per process during the run
    trips_per_1000: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: the fake's counts during the run (with ``--rate``): requests, rate_limited, early_requests
    provider: dict[str, int] = field(default_factory=dict)


async def fetch_only(cfg: config_mod.Config, store: Store, path: str) -> int:
    """The ceiling: the same HTTP client, gate and JSON parsing as a sync, and
    nothing else. ``concurrency`` workers take ids from a queue that a reader
    fills from the targets a page at a time, so no request waits for the
    database or for a batch's slowest request. Returns how many users failed
    because the provider's 429s used up their waits (under ``--rate``)."""
    rt = open_runtime(cfg.providers[0])
    batch_size = cfg.sync.batch_size
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

    failed = 0

    async def work() -> None:
        nonlocal failed
        while (user_id := await queue.get()) is not None:
            try:
                await rt.client.get_json(rt.config.base_url + path.format(user_id))
            except RateLimited:
                failed += 1

    try:
        await asyncio.gather(read_ids(), *(work() for _ in range(workers)))
        return failed
    finally:
        await rt.close()


async def bare_aiohttp(url: str, path: str, token: str, users: int, concurrency: int) -> None:
    """The honest ceiling: a plain ``aiohttp.ClientSession``, ``concurrency``
    workers, ``orjson.loads`` of each body, and nothing else (no gate, no
    retries, no secret scan, no database). The ids come from the fake a page
    at a time, as fetch-only reads them from the targets."""
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=2 * 1000)
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async with aiohttp.ClientSession(connector=connector, headers=headers) as s:

        async def read_ids() -> None:
            for offset in range(0, users, 10_000):
                async with s.get(f"{url}/_fake/ids", params={"offset": offset, "limit": 10_000}) as r:
                    for user_id in orjson.loads(await r.read()):
                        await queue.put(user_id)
            for _ in range(concurrency):
                await queue.put(None)

        async def work() -> None:
            while (user_id := await queue.get()) is not None:
                async with s.get(url + path.format(user_id)) as r:
                    body = await r.read()
                    assert r.status == 200, (r.status, body[:200])
                    orjson.loads(body)

        await asyncio.gather(read_ids(), *(work() for _ in range(concurrency)))


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


@dataclass
class Bench:
    """One provider type's fake, database and engine, and every run made on them."""

    provider_type: str
    url: str
    cfg: config_mod.Config
    store: Store
    users: int
    rate: int | None
    verbose: bool
    #: skip fetch-only and compare with ``users / rate`` seconds (``--by-id-floor``)
    by_id_floor: bool = False
    runs: dict[str, list[Run]] = field(default_factory=lambda: {name: [] for name in ROWS})
    #: per row and round, the fetch-only and the bare seconds it is compared with
    ref_fetch: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in ROWS})
    ref_bare: dict[str, list[float | None]] = field(default_factory=lambda: {name: [] for name in ROWS})

    async def provider_stats(self) -> dict[str, int]:
        """The fake's request counts so far (with ``--rate`` only: the plain fake keeps none)."""
        if self.rate is None:
            return {}
        async with aiohttp.ClientSession() as s, s.get(f"{self.url}/_fake/stats") as r:
            stats = await r.json()
        return {k: stats[k] for k in ("requests", "rate_limited", "early_requests")}

    async def measure(
        self,
        name: str,
        round_: int,
        work: Callable[[], Awaitable[T]],
        prepare: Callable[[], Awaitable[object]] | None = None,
    ) -> tuple[Run, T]:
        await settle(self.store)
        if prepare is not None:
            await prepare()
        before, trips = await self.provider_stats(), self.store.round_trips
        elapsed, cpu, result = await measured(work)
        after = await self.provider_stats()
        run = Run(elapsed, cpu, provider={k: v - before[k] for k, v in after.items()})
        if name in PHASES:
            run.trips_per_1000 = (self.store.round_trips - trips) / self.users * 1000
        if self.verbose:
            show(round_, name, run, self.users)
        return run, result

    async def bare(self, round_: int) -> Run | None:
        if self.rate is not None:
            return None  # no retries: under a budget it would only collect 429s
        token = os.environ[TOKEN_ENV]
        concurrency = self.cfg.providers[0].concurrency
        path = BY_ID[self.provider_type]
        run, _ = await self.measure(
            "bare aiohttp", round_, lambda: bare_aiohttp(self.url, path, token, self.users, concurrency)
        )
        return run

    async def fetch(self, round_: int) -> Run:
        if self.by_id_floor:
            # not run: one request per user at the budget takes users / rate
            # seconds at best, the ceiling by-id reading can reach
            return Run(self.users / (self.rate or 1), {})
        path = BY_ID[self.provider_type]
        run, failed = await self.measure("fetch-only", round_, lambda: fetch_only(self.cfg, self.store, path))
        if failed:
            run.counts = {"fetched": self.users - failed, "failed": failed}
        return run

    async def phase(self, engine: Engine, name: str, round_: int) -> Run:
        changed = None
        if name == "1% change resync":
            async with aiohttp.ClientSession() as s, s.post(f"{self.url}/_fake/modify?fraction=0.01") as r:
                changed = (await r.json())["changed"]
        run, report = await self.measure(
            name,
            round_,
            lambda: engine.sync("bench", trigger="resync"),
            prepare=lambda: self.store.make_due("bench", None),
        )
        run.counts = report.counts
        if self.rate is not None:
            return run  # under a budget a user may fail (its 429 waits used up): the outcome says
        if changed is not None:
            assert run.counts["updated"] == changed, (run.counts, changed)
        if name == "first sync":
            assert run.counts["created"] == self.users, run.counts
        return run

    def add(self, name: str, run: Run, fetch: float, bare: float | None) -> None:
        self.runs[name].append(run)
        self.ref_fetch[name].append(fetch)
        self.ref_bare[name].append(bare)

    async def round(self, engine: Engine, round_: int) -> None:
        """Every row once, back to back. The machine's speed drifts within a
        minute: the first sync is compared with the fetch-only and bare runs
        right before and right after it, the resyncs with the ones after."""
        if round_:
            await forget_everything(self.store)
        bare = await self.bare(round_)
        fetch = await self.fetch(round_)
        if not self.by_id_floor:
            self.add("fetch-only", fetch, fetch.seconds, seconds(bare))
        if bare is not None:
            self.add("bare aiohttp", bare, fetch.seconds, bare.seconds)
        for name in PHASES:
            run = await self.phase(engine, name, round_)
            if name == "first sync":
                fetch_after = await self.fetch(round_)
                bare_after = await self.bare(round_)
                self.add(
                    name,
                    run,
                    (fetch.seconds + fetch_after.seconds) / 2,
                    mean(seconds(bare), seconds(bare_after)),
                )
                fetch, bare = fetch_after, bare_after
            else:
                self.add(name, run, fetch.seconds, seconds(bare))

    def x_fetch(self, name: str) -> list[float]:
        return [f / r.seconds for f, r in zip(self.ref_fetch[name], self.runs[name], strict=True)]

    def x_bare(self, name: str) -> list[float | None]:
        return [
            None if b is None else b / r.seconds
            for b, r in zip(self.ref_bare[name], self.runs[name], strict=True)
        ]


def seconds(run: Run | None) -> float | None:
    return None if run is None else run.seconds


def mean(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a + b) / 2


async def bench(args: argparse.Namespace) -> None:
    # under a budget every 429 is a warning: the counts are in the table
    logs.configure("warning" if args.rate is None else "error", "console")
    os.environ[TOKEN_ENV] = "fake-token"
    print(
        f"syncd benchmark: {args.users} users, concurrency {args.concurrency}, batch {args.batch_size},"
        f" {args.rounds} rounds"
        + ("" if args.rate is None else f", provider budget {args.rate} requests/s (429 + Retry-After: 1)")
        + ("" if args.client_rps is None else f", syncd max_rps {args.client_rps:g}")
    )
    print(f"machine: {machine()}")
    for provider_type in args.types:
        await bench_type(provider_type, args)


async def bench_type(provider_type: str, args: argparse.Namespace) -> None:
    # the plain fake (no middleware) is cheapest; a budget needs the middleware and its log
    limited = args.rate is not None
    async with (
        fake_process(provider_type, args.users, plain=not limited, record=limited, rate=args.rate) as url,
        fresh_database() as db_url,
    ):
        table = DIALECTS[provider_type]().provider_config("bench", url, TOKEN_ENV)
        cfg = config_mod.from_dict(
            {
                "sync": {"batch_size": args.batch_size},
                "providers": [
                    table
                    | {"concurrency": args.concurrency}
                    | ({} if args.client_rps is None else {"max_rps": args.client_rps})
                ],
            }
        )
        store = await Store.connect(db_url, min_size=2, max_size=4)
        await store.migrate()
        await add_targets(store, url, args.users)
        b = Bench(provider_type, url, cfg, store, args.users, args.rate, args.verbose, args.by_id_floor)
        async with Engine(store, cfg, replica="bench") as engine:
            for round_ in range(args.rounds):
                await b.round(engine, round_)
        await store.close()
    report(b)


def report(b: Bench) -> None:
    """Each round's ratios compare runs made within a minute of each other; the
    median round (by x fetch) is reported, as the machine's speed drifts between rounds."""
    limited = b.rate is not None
    print(f"\n{b.provider_type}:")
    print(
        f"{'phase':<18} {'seconds':>8} {'users/s':>9} {'x fetch':>8} {'x bare':>7} {'SQL trips/1k':>13}"
        f"   CPU µs/user: {'syncd':>6} {'provider':>9} {'postgres':>9}"
        + (f"  {'requests':>9} {'429':>6} {'req/user':>8} {'early':>6}" if limited else "")
        + "  outcome"
    )
    for name in ROWS:
        if not b.runs[name]:
            continue
        i = median_round(b, name)
        run, x_fetch, x_bare = b.runs[name][i], b.x_fetch(name)[i], b.x_bare(name)[i]
        outcome = ", ".join(f"{k} {v}" for k, v in run.counts.items() if v)
        trips_text = "" if run.trips_per_1000 is None else f"{run.trips_per_1000:.1f}"
        bare_text = "" if x_bare is None else f"{x_bare:.2f}"
        per_user = {k: v / b.users * 1e6 for k, v in run.cpu.items()}
        print(
            f"{name:<18} {run.seconds:>8.1f} {b.users / run.seconds:>9.0f} {x_fetch:>8.2f} {bare_text:>7}"
            f" {trips_text:>13}                {per_user.get('syncd', 0):>6.0f}"
            f" {per_user.get('provider', 0):>9.0f} {per_user.get('postgres', 0):>9.0f}"
            + (provider_columns(run.provider, b.users) if limited else "")
            + f"  {outcome}"
        )
    if b.rate is not None:
        print(
            f"bare aiohttp: not run under a budget (no retries); one request per user at"
            f" {b.rate} requests/s takes at least {b.users / b.rate:.0f} s"
        )
    if b.by_id_floor:
        print(
            f"fetch-only: not run (--by-id-floor); x fetch compares with that floor, {b.users / (b.rate or 1):.0f} s"
        )
    if len(b.runs["first sync"]) > 1:
        print("\nx fetch / x bare of each round:")
        for name in (name for name in ROWS if b.runs[name]):
            fetch = "  ".join(f"{x:.2f}" for x in b.x_fetch(name))
            bare = "  ".join("-" if x is None else f"{x:.2f}" for x in b.x_bare(name))
            print(f"  {name:<18} {fetch}   /   {bare}")
    print(f"peak RSS of the syncd process: {peak_rss_mb():.0f} MB")


def median_round(b: Bench, name: str) -> int:
    """The round with the median x fetch; for fetch-only itself (always 1.00)
    the one with the median x bare, when the bare ceiling ran."""
    ratios: list[float | None] = list(b.x_fetch(name))
    if name == "fetch-only" and None not in b.x_bare(name):
        ratios = b.x_bare(name)
    known = [x for x in ratios if x is not None]
    return ratios.index(statistics.median_low(known))


def provider_columns(provider: dict[str, int], users: int) -> str:
    requests = provider.get("requests", 0)
    return (
        f"  {requests:>9} {provider.get('rate_limited', 0):>6} {requests / users:>8.3f}"
        f" {provider.get('early_requests', 0):>6}"
    )


def show(round_: int, name: str, run: Run, users: int) -> None:
    cpu = ", ".join(f"{k} {v:.2f}s" for k, v in run.cpu.items())
    print(
        f"  round {round_ + 1}  {name:<18} {run.seconds:6.2f}s {users / run.seconds:8.0f}/s  CPU: {cpu};"
        f" RSS {rss_mb():.0f} MB (peak {peak_rss_mb():.0f})"
        + "".join(f"; {k} {v}" for k, v in run.provider.items())
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5, help="rounds of all phases; the median round counts")
    p.add_argument("--verbose", action="store_true", help="print every run")
    p.add_argument(
        "--rate",
        type=int,
        default=None,
        help="the fake answers at most this many requests per second, 429 + Retry-After: 1 beyond",
    )
    p.add_argument(
        "--client-rps",
        type=float,
        default=None,
        help="syncd's own budget (the provider's max_rps option); default none, as in production",
    )
    p.add_argument(
        "--by-id-floor",
        action="store_true",
        help="with --rate: skip fetch-only (one GET per user) and compare with users / rate seconds instead",
    )
    p.add_argument(
        "--types",
        default="zitadel",
        help=f"provider types to run, comma-separated, of {', '.join(BY_ID)} (default: zitadel)",
    )
    args = p.parse_args()
    if args.rounds < 1 or args.users < 1:
        p.error("--users and --rounds must be at least 1")
    if args.rate is not None and args.rate < 1:
        p.error("--rate must be at least 1")
    if args.by_id_floor and args.rate is None:
        p.error("--by-id-floor needs --rate")
    args.types = [t.strip() for t in args.types.split(",") if t.strip()]
    if not args.types or not set(args.types) <= set(BY_ID):
        p.error(f"--types: a comma-separated list of {', '.join(BY_ID)}")
    structlog.configure()
    tune_gc()  # as `syncd run` and `syncd resync` do
    asyncio.run(bench(args))
    return 0
