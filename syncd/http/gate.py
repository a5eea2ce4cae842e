"""When a request to one provider may be sent."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from syncd.errors import CircuitOpen
from syncd.http import defaults
from syncd.http.circuit import CircuitBreaker
from syncd.timeutil import utcnow


class Gate:
    """Everything that decides *when* a request to one provider may be sent,
    shared by all workers of this process: the provider-wide pause (from
    ``Retry-After``, possibly set by another replica), the rate budget, the
    adaptive concurrency limit and the circuit breaker.

    ``clock`` (monotonic seconds), ``now`` (UTC) and ``sleep`` are injectable
    for tests."""

    def __init__(
        self,
        provider: str,
        *,
        concurrency: int = defaults.CONCURRENCY,
        max_rps: float | None = defaults.MAX_RPS,
        adaptive: bool = defaults.ADAPTIVE,
        circuit_failures: int = defaults.CIRCUIT_FAILURES,
        circuit_cooldown: float = defaults.CIRCUIT_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.max_concurrency = concurrency
        self.limit = float(concurrency)
        self.adaptive = adaptive
        self.in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.paused_until: datetime | None = None
        #: why requests wait (``"HTTP 429"``, "recorded by another replica"), for whoever shows it
        self.pause_reason: str | None = None
        self._pause_changed = asyncio.Event()
        self.max_rps = max_rps
        self._clock, self._now, self._sleep = clock, now, sleep
        self._tokens = max_rps or 0.0
        self._bucket_at = clock()
        self._bucket_lock = asyncio.Lock()
        self.circuit = CircuitBreaker(circuit_failures, circuit_cooldown, clock=clock)
        #: called with the new pause instant so it can be shared (engine → store)
        self.on_pause: Callable[[datetime, str], Awaitable[None]] | None = None

    async def acquire(self) -> int:
        """Wait for a slot, the end of any pause and a rate token; returns the
        circuit ticket (``CircuitBreaker.admit``), > 0 for the half-open probe."""
        await self._take_slot()
        ticket: int | None = None
        try:
            while True:
                await self.wait_pause()
                if not ticket:  # (re)check the circuit; a probe keeps its turn
                    ticket = self.circuit.admit()
                    if ticket is None:
                        raise CircuitOpen(
                            "circuit open: provider failing, not sending", provider=self.provider
                        )
                await self._take_token()
                # a 429 may have announced a pause while we slept for a rate token
                if not self.paused():
                    return ticket
        except BaseException:
            if ticket:
                self.circuit.abandon(ticket)
            self._release_slot()
            raise

    async def _take_slot(self) -> None:
        if self.in_flight < max(1, int(self.limit)) and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # release() hands us its slot (in_flight already counted)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()
            raise

    async def wait_turn(self) -> None:
        """Wait out the pause and take a rate token, until no pause is in force."""
        while True:
            await self.wait_pause()
            await self._take_token()
            if not self.paused():
                return

    async def release(self) -> None:
        self._release_slot()

    def _release_slot(self) -> None:
        """A FIFO hand-over of slots: O(1) per request, no thundering herd."""
        self.in_flight -= 1
        while self._waiters and self.in_flight < max(1, int(self.limit)):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    # -- the provider-wide pause ------------------------------------------------------------
    def paused(self) -> bool:
        return self.paused_until is not None and self.paused_until > self._now()

    async def wait_pause(self) -> None:
        while self.paused_until is not None:
            delay = (self.paused_until - self._now()).total_seconds()
            if delay <= 0:
                break
            changed = self._pause_changed
            with contextlib.suppress(TimeoutError):
                # woken early when the pause is shortened or cleared (set_pause)
                await asyncio.wait_for(changed.wait(), delay)

    def set_pause(self, until: datetime | None) -> None:
        """The pause as provider_state records it (shared by every replica, and
        cleared there by `syncd pause clear`): it may shorten or end ours."""
        if until == self.paused_until:
            return
        self.paused_until = until
        self.pause_reason = None
        self._pause_changed.set()
        self._pause_changed = asyncio.Event()

    def apply_pause(self, until: datetime, reason: str | None = None) -> bool:
        """Adopt a pause (ours or another replica's); True if it extended ours."""
        if self.paused_until is None or until > self.paused_until:
            self.paused_until = until
            self.pause_reason = reason
            return True
        return False

    async def pause(self, until: datetime, reason: str) -> bool:
        """Pause every request until ``until``; True if that extended the pause."""
        if not self.apply_pause(until, reason):
            return False
        if self.on_pause is not None:
            await self.on_pause(until, reason)
        return True

    # -- the rate budget and adaptive concurrency ---------------------------------------------
    async def _take_token(self) -> None:
        if not self.max_rps:
            return
        async with self._bucket_lock:
            while True:
                now = self._clock()
                self._tokens = min(self.max_rps, self._tokens + (now - self._bucket_at) * self.max_rps)
                self._bucket_at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self.max_rps)

    def rate_limited(self) -> None:
        """Multiplicative decrease of concurrency (AIMD) on a 429."""
        if self.adaptive:
            self.limit = max(1.0, self.limit / 2)

    def succeeded(self) -> None:
        self.circuit.success()
        if self.adaptive and self.limit < self.max_concurrency:
            self.limit = min(float(self.max_concurrency), self.limit + 1 / self.limit)
