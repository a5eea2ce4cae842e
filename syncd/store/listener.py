"""LISTEN on one dedicated connection, for every channel a process hears.

``Listener.listen`` is that connection for as long as a context is open;
``Notifications`` keeps one up for the life of a process, connecting again
(with backoff) whenever it goes, and tells each ``Subscription`` when it
starts and stops hearing: a NOTIFY sent while nobody listens is lost, so a
subscriber must read again what it might have missed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from syncd.store.database import CONNECTION_ERRORS, Database, translate


class Listener(Database):
    @asynccontextmanager
    async def listen(
        self, callbacks: Mapping[str, Callable[[str], None]]
    ) -> AsyncIterator[asyncpg.Connection]:
        """LISTEN to each channel of ``callbacks`` (its callback gets the
        payload) on one dedicated connection while the context is open."""
        try:
            conn = await asyncpg.connect(self.dsn)
        except CONNECTION_ERRORS as exc:
            raise translate(exc, self.dsn) from exc

        def on_notify(_c: object, _pid: int, channel: str, payload: str) -> None:
            callbacks[channel](payload)

        try:
            for channel in callbacks:
                await conn.add_listener(channel, on_notify)
            yield conn
        finally:
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                conn.terminate()


def _nothing(*_args: object) -> None:
    return None


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()


@dataclass(frozen=True, kw_only=True, slots=True)
class Subscription:
    """What one part of the process hears on a channel."""

    channel: str
    #: gets each notification's payload
    on_notify: Callable[[str], None]
    #: the connection is up: from now on every notification arrives
    on_listening: Callable[[], None] = _nothing
    #: not listening any more (``error``: the attempt to connect failed; None:
    #: the connection went); called once per outage, not once per attempt
    on_lost: Callable[[Exception | None], None] = _nothing


class ListenConnection(Protocol):
    def add_termination_listener(self, callback: Callable[[Any], None]) -> None: ...


class CanListen(Protocol):
    """``Listener.listen`` (the ``Store``), or a stand-in in a unit test."""

    def listen(
        self, callbacks: Mapping[str, Callable[[str], None]]
    ) -> AbstractAsyncContextManager[ListenConnection]: ...


class Notifications:
    """One LISTEN connection for every subscription of the process, connected
    again whenever it goes, after ``backoff(attempt)`` seconds (attempt 0
    after a connection that was up, then 1, 2, … while connecting fails)."""

    def __init__(
        self,
        store: CanListen,
        *,
        backoff: Callable[[int], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.backoff = backoff
        self.sleep = sleep
        self.subscriptions: list[Subscription] = []
        #: the connection is up and every channel LISTENed to
        self.listening = False
        self._task: asyncio.Task[None] | None = None
        self._tried = asyncio.Event()

    def subscribe(self, subscription: Subscription) -> None:
        if self._task is not None:
            raise RuntimeError("subscribe before start: the channels are LISTENed to when connecting")
        if any(s.channel == subscription.channel for s in self.subscriptions):
            raise ValueError(f"channel {subscription.channel!r} has a subscriber already")
        self.subscriptions.append(subscription)

    async def start(self) -> None:
        """Connect, and keep connected until ``close``. Returns once the first
        attempt succeeded or failed (the next ones are in the background)."""
        self._task = asyncio.create_task(self._serve(), name="listen")
        tried = asyncio.ensure_future(self._tried.wait())
        try:
            await asyncio.wait({tried, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tried.cancel()

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.listening = False

    async def _serve(self) -> None:
        attempt = 0
        reported_down = False
        callbacks = {s.channel: s.on_notify for s in self.subscriptions}
        while True:
            try:
                async with self.store.listen(callbacks) as conn:
                    lost = asyncio.Event()
                    conn.add_termination_listener(_setter(lost))
                    self._up()
                    attempt, reported_down = 0, False
                    await lost.wait()
                    self._down(None)  # at once: closing what is left may take a moment
                    reported_down = True
            except Exception as exc:  # an outage or a broken connection must not end the loop
                if self.listening or not reported_down:
                    self._down(exc)
                reported_down = True
                attempt += 1
            self._tried.set()
            await self.sleep(self.backoff(attempt))

    def _up(self) -> None:
        self.listening = True
        self._tried.set()
        for s in self.subscriptions:
            s.on_listening()

    def _down(self, error: Exception | None) -> None:
        self.listening = False
        for s in self.subscriptions:
            s.on_lost(error)
