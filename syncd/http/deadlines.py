"""The deadline of whole requests, enforced by one timer task.

aiohttp's sock_read restarts with each chunk, so a server that trickles its
answer would otherwise hold a worker forever. ``asyncio.timeout`` per
request cost ~6 µs (a timer each), 7 % of a fetch: one sweeper task cancels
the requests past their deadline instead, and the cancellation it caused is
told apart from anyone else's."""

from __future__ import annotations

import asyncio
import time
from typing import Any


class Deadlines:
    def __init__(self, provider: str, timeout: float) -> None:
        self.provider = provider
        #: the whole request (connect, send, every chunk of the body) must fit in this
        self.timeout = timeout
        #: requests in flight: their task → (deadline, the task's cancelling() count then)
        self.in_flight: dict[asyncio.Task[Any], tuple[float, int]] = {}
        self._timed_out: set[asyncio.Task[Any]] = set()
        self.sweeper: asyncio.Task[None] | None = None

    def watch(self) -> asyncio.Task[Any] | None:
        """Put the current task under the deadline."""
        task = asyncio.current_task()
        if task is None:
            return None
        self.in_flight[task] = (time.monotonic() + self.timeout, task.cancelling())
        if self.sweeper is None or self.sweeper.done():
            self.sweeper = asyncio.get_running_loop().create_task(
                self._sweep(), name=f"deadlines:{self.provider}"
            )
        return task

    def expired(self, task: asyncio.Task[Any] | None) -> bool:
        """Was this cancellation our deadline's (and only ours)? Then it is
        taken back, and the request failed with a timeout."""
        if task is None or task not in self._timed_out:
            return False
        self._timed_out.discard(task)
        _, cancelling = self.in_flight.get(task, (0.0, 0))
        return task.uncancel() <= cancelling  # more left: someone else cancelled too

    def done(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self.in_flight.pop(task, None)
            self._timed_out.discard(task)

    async def _sweep(self) -> None:
        """One timer for every request in flight: cancel those past the deadline."""
        while self.in_flight:
            await asyncio.sleep(min(1.0, self.timeout / 4))
            now = time.monotonic()
            for task, (deadline, _) in list(self.in_flight.items()):
                if deadline <= now and task not in self._timed_out:
                    self._timed_out.add(task)
                    task.cancel()

    async def aclose(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
            await asyncio.gather(self.sweeper, return_exceptions=True)
            self.sweeper = None
