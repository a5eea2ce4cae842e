"""A pass's fetch pool: concurrency workers shared by the batches in flight."""

from __future__ import annotations

import asyncio

import pytest

from syncd.engine import _FetchPool


async def test_batches_share_the_workers_and_get_their_outcomes_in_order():
    running, most = 0, 0

    async def fetch(target: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        running -= 1
        return target * 10

    async with _FetchPool(fetch, 4) as pool:
        a, b, empty = await asyncio.gather(
            pool.fetch_all(range(50)), pool.fetch_all(range(100, 130)), pool.fetch_all([])
        )
    assert a == [n * 10 for n in range(50)] and b == [n * 10 for n in range(100, 130)] and empty == []
    assert most == 4  # never more requests at once than the pool has workers


async def test_a_crash_fails_its_own_batch_and_the_pool_goes_on():
    async def fetch(target: int) -> int:
        if target == 3:
            raise RuntimeError("adapter bug")
        return target

    async with _FetchPool(fetch, 2) as pool:
        with pytest.raises(RuntimeError, match="adapter bug"):
            await pool.fetch_all(range(6))
        assert await pool.fetch_all(range(10, 13)) == [10, 11, 12]
