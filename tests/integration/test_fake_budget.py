"""The fake provider's request budget over real HTTP: a plain aiohttp client
hammering it gets 429 + ``Retry-After: 1`` beyond the budget, in process and
in ``python -m syncd.testing.serve --rate`` (the benchmark's provider)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from syncd.testing.dialects import fake
from syncd.testing.dialects.webex import WebexDialect
from syncd.testing.fake import FakeProvider

BUDGET = 5
BURST = 40


@pytest.fixture
async def limited() -> AsyncIterator[FakeProvider]:
    async with fake("zitadel", rate_limit=BUDGET) as f:
        yield f


async def hammer(url: str, token: str = "fake-token") -> list[tuple[int, str | None, bytes]]:
    """``BURST`` GETs at once: (status, Retry-After, body) of each."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as s:

        async def one() -> tuple[int, str | None, bytes]:
            async with s.get(url) as r:
                return r.status, r.headers.get("Retry-After"), await r.read()

        return await asyncio.gather(*(one() for _ in range(BURST)))


async def test_requests_beyond_the_budget_get_429_with_retry_after_1(limited: FakeProvider) -> None:
    (uid,) = limited.seed(1)
    answers = await hammer(f"{limited.url}/v2/users/{uid}")
    ok = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] != 200]
    assert refused, "a burst of 40 requests within a budget of 5 per second"
    assert {(status, retry_after) for status, retry_after, _ in refused} == {(429, "1")}
    assert all(b'"code":8' in body.replace(b" ", b"") for _, _, body in refused)  # ZITADEL's shape
    assert all(uid.encode() in body for _, _, body in ok)
    # what the fake recorded: never more than the budget answered within one second
    served = sorted(r.at for r in limited.requests if r.status == 200)
    assert len(served) == len(ok)
    assert all(b - a >= 1.0 for a, b in zip(served, served[BUDGET:], strict=False))
    # each 429 is an announcement, so early_requests() can judge a client
    assert len(limited.announcements) == len(refused)
    assert {r.fault for r in limited.requests if r.status == 429} == {"budget"}


async def test_a_refused_request_does_not_use_up_a_queued_fault(limited: FakeProvider) -> None:
    (uid,) = limited.seed(1)
    limited.inject("503", times=1)
    limited.rate_limit = 0  # everything refused by the budget
    statuses = {a[0] for a in await hammer(f"{limited.url}/v2/users/{uid}")}
    assert statuses == {429}
    assert len(limited.faults) == 1


async def test_serve_with_rate_answers_429_beyond_it_and_counts_them() -> None:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "syncd.testing.serve", "--type", "webex", "--users", "3"),
        *("--rate", str(BUDGET), "--record"),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        assert line.startswith("READY "), line
        url = line.split(" ", 1)[1]
        async with aiohttp.ClientSession() as s, s.get(f"{url}/_fake/ids") as r:
            uid = (await r.json())[0]
        answers = await hammer(f"{url}/identity/scim/{WebexDialect.org_id}/v2/Users/{uid}")
        refused = [a for a in answers if a[0] != 200]
        assert refused
        assert {(status, retry_after) for status, retry_after, _ in refused} == {(429, "1")}
        async with aiohttp.ClientSession() as s, s.get(f"{url}/_fake/stats") as r:
            stats = await r.json()  # the control routes are outside the budget
        assert stats["requests"] == BURST
        assert stats["rate_limited"] == len(refused)
        assert stats["announcements"] == len(refused)
    finally:
        proc.terminate()
        await proc.wait()
