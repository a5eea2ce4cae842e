"""Load test: a provider answering 429 with ``Retry-After: 1`` to 20 % of requests.

    python -m bench.ratelimit [--users 10000] [--concurrency 64] [--rate 0.2]

Reports the total time against the ideal for a client that obeys every
Retry-After (each pause stops *all* requests for a second, so a round of
``concurrency`` requests gets about ``(1 - rate) * concurrency`` users through
per second), and the number of requests that reached the provider while it
had asked us to wait (must be 0; requests already in flight when the 429 was
sent, within 50 ms, are not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import aiohttp

from bench.common import fake_process, fresh_database, machine
from syncd import config as config_mod
from syncd import logs
from syncd.engine import Engine
from syncd.process import tune_gc
from syncd.store import Store


async def load_test(users: int, concurrency: int, rate: float) -> None:
    logs.configure("error", "console")
    async with (
        fake_process("zitadel", users, record=True) as url,
        fresh_database("syncd_ratelimit") as db_url,
    ):
        os.environ["SYNCD_BENCH_TOKEN"] = "fake-token"
        cfg = config_mod.from_dict(
            {
                "sync": {"batch_size": 1000},
                "providers": [
                    {
                        "name": "bench",
                        "type": "zitadel",
                        "base_url": url,
                        "token_env": "SYNCD_BENCH_TOKEN",
                        "concurrency": concurrency,
                        "max_attempts": 10,
                    }
                ],
            }
        )
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/_fake/ids") as r:
                ids = await r.json()
            async with s.post(
                f"{url}/_fake/faults",
                json={"kind": "429", "probability": rate, "retry_after": "1", "times": None},
            ) as r:
                assert r.status == 200
        store = await Store.connect(db_url)
        await store.migrate()
        await store.add_targets("bench", ids)
        print(
            f"rate-limit load test: {users} users, concurrency {concurrency}, "
            f"429 + Retry-After: 1 on {rate:.0%} of requests"
        )
        print(f"machine: {machine()}")
        started = time.perf_counter()
        async with Engine(store, cfg, replica="bench") as engine:
            report = await engine.sync("bench", trigger="resync")
        elapsed = time.perf_counter() - started
        await store.close()
        async with aiohttp.ClientSession() as s, s.get(f"{url}/_fake/stats") as r:
            stats = await r.json()
        ideal = users / ((1 - rate) * concurrency)
        print(f"\nsynced: {report.summary()}")
        print(f"requests sent: {stats['requests']}, answered 429: {stats['rate_limited']}")
        print(
            f"total time: {elapsed:.1f} s; ideal for a client obeying every Retry-After: {ideal:.1f} s "
            f"(ratio {elapsed / ideal:.2f})"
        )
        print(f"requests that arrived before a Retry-After instant: {stats['early_requests']}")
        if stats["early_requests"]:
            print(f"  ms after the 429 was sent (sample): {stats['early_after_announcement_ms']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rate", type=float, default=0.2)
    args = p.parse_args()
    tune_gc()  # as `syncd run` and `syncd resync` do
    asyncio.run(load_test(args.users, args.concurrency, args.rate))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
