"""The gate with an injected clock, UTC and sleep: slots, AIMD, pauses, the
rate budget and the circuit, with no real waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from syncd.errors import CircuitOpen
from syncd.http import Gate

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class Time:
    """A monotonic clock, a UTC clock and a sleep that only moves them."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.utc = NOW
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.utc

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.mono += seconds
        self.utc += timedelta(seconds=seconds)


def gate(t: Time, **kw: object) -> Gate:
    return Gate("p", clock=t.clock, now=t.now, sleep=t.sleep, **kw)  # type: ignore[arg-type]


def test_aimd_is_off_by_default_as_in_the_config() -> None:
    g = gate(Time(), concurrency=8)
    g.rate_limited()
    assert g.limit == 8


def test_adaptive_halves_on_429_and_recovers_by_one_over_the_limit() -> None:
    g = gate(Time(), concurrency=8, adaptive=True)
    g.rate_limited()
    g.rate_limited()
    assert g.limit == 2
    g.succeeded()
    assert g.limit == 2.5
    for _ in range(100):
        g.succeeded()
    assert g.limit == 8  # never above the configured concurrency
    for _ in range(10):
        g.rate_limited()
    assert g.limit == 1  # never below one


async def test_slots_are_handed_over_in_arrival_order() -> None:
    g = gate(Time(), concurrency=1)
    assert await g.acquire() == 0
    order: list[int] = []

    async def worker(n: int) -> None:
        await g.acquire()
        order.append(n)
        await g.release()

    waiting = [asyncio.create_task(worker(n)) for n in range(3)]
    await asyncio.sleep(0)  # let them queue
    assert g.in_flight == 1 and order == []
    await g.release()
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2] and g.in_flight == 0


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    g = gate(Time(), concurrency=1)
    await g.acquire()
    waiter = asyncio.create_task(g.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await g.release()
    assert g.in_flight == 0


async def test_a_pause_only_ever_extends_and_a_shared_clear_ends_it() -> None:
    t = Time()
    g = gate(t)
    seen: list[datetime] = []

    async def shared(until: datetime, reason: str) -> None:
        seen.append(until)

    g.on_pause = shared
    assert await g.pause(NOW + timedelta(seconds=30), "HTTP 429")
    assert not await g.pause(NOW + timedelta(seconds=10), "HTTP 429")  # shorter: ignored
    assert g.paused() and seen == [NOW + timedelta(seconds=30)]
    t.utc += timedelta(seconds=31)
    assert not g.paused()
    g.set_pause(None)
    assert g.paused_until is None


async def test_a_waiter_is_woken_when_the_pause_is_cleared() -> None:
    g = gate(Time())
    g.apply_pause(NOW + timedelta(hours=1))
    waiting = asyncio.create_task(g.wait_pause())
    await asyncio.sleep(0)
    assert not waiting.done()
    g.set_pause(None)  # `syncd pause clear`, read from provider_state
    await asyncio.wait_for(waiting, 1)


async def test_the_rate_budget_spaces_requests_at_max_rps() -> None:
    t = Time()
    g = gate(t, concurrency=10, max_rps=4)
    for _ in range(6):
        await g.acquire()
    # a full bucket of 4, then a quarter second per token
    assert t.slept == [0.25, 0.25]


async def test_an_open_circuit_refuses_without_holding_a_slot() -> None:
    g = gate(Time(), circuit_failures=1)
    g.circuit.failure()
    with pytest.raises(CircuitOpen):
        await g.acquire()
    assert g.in_flight == 0
