"""The process's one LISTEN connection (``Notifications``) against a stand-in
for the store: connecting again after a loss or a failure, what each
subscription is told, and no waiting (the backoff's sleep is recorded)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from syncd.errors import StoreUnavailable
from syncd.store.listener import Notifications, Subscription


class Conn:
    def __init__(self) -> None:
        self.on_terminate: list[Callable[[Any], None]] = []
        self.closed = False

    def add_termination_listener(self, callback: Callable[[Any], None]) -> None:
        self.on_terminate.append(callback)

    def terminate(self) -> None:
        """The server ended the connection (pg_terminate_backend, a failover)."""
        for callback in self.on_terminate:
            callback(self)


class Store:
    """``listen`` answers with the next of ``outcomes``: "up" (a connection
    that stays until terminated) or "down" (the database does not answer)."""

    def __init__(self, *outcomes: str) -> None:
        self.outcomes = list(outcomes)
        self.conns: list[Conn] = []
        self.callbacks: Mapping[str, Callable[[str], None]] = {}
        self.attempted = asyncio.Event()

    @contextlib.asynccontextmanager
    async def listen(self, callbacks: Mapping[str, Callable[[str], None]]) -> AsyncIterator[Conn]:
        self.attempted.set()
        outcome = self.outcomes.pop(0) if self.outcomes else "up"
        if outcome == "down":
            raise StoreUnavailable("connection refused")
        self.callbacks = callbacks
        conn = Conn()
        self.conns.append(conn)
        try:
            yield conn
        finally:
            conn.closed = True


class Recorder:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.payloads: list[str] = []
        self.states: list[str] = []

    def subscription(self) -> Subscription:
        return Subscription(
            channel=self.channel,
            on_notify=self.payloads.append,
            on_listening=lambda: self.states.append("listening"),
            on_lost=lambda error: self.states.append("failed" if error else "lost"),
        )


class Sleeps:
    """The backoff's waits, recorded; each returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


async def settle(predicate: Callable[[], bool]) -> None:
    """Let the loop run the listener's task until ``predicate`` holds."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("the listener did not get there")


def make(store: Store, *channels: str) -> tuple[Notifications, list[Recorder], Sleeps]:
    sleeps = Sleeps()
    notifications = Notifications(store, backoff=float, sleep=sleeps)  # attempt n waits n s
    recorders = [Recorder(c) for c in channels]
    for r in recorders:
        notifications.subscribe(r.subscription())
    return notifications, recorders, sleeps


async def test_one_connection_delivers_every_channel_to_its_subscriber():
    store = Store("up")
    notifications, (resync, pauses), _ = make(store, "syncd_resync", "syncd_provider_state")
    await notifications.start()
    try:
        assert notifications.listening and len(store.conns) == 1
        store.callbacks["syncd_resync"]("corp")
        store.callbacks["syncd_provider_state"]("corp 1700000000")
        assert resync.payloads == ["corp"] and pauses.payloads == ["corp 1700000000"]
        assert resync.states == pauses.states == ["listening"]
    finally:
        await notifications.close()


async def test_a_lost_connection_is_reported_once_and_connected_again():
    store = Store("up", "up")
    notifications, (pauses,), sleeps = make(store, "syncd_provider_state")
    await notifications.start()
    try:
        store.conns[0].terminate()
        await settle(lambda: len(store.conns) == 2 and notifications.listening)
        assert pauses.states == ["listening", "lost", "listening"]
        assert store.conns[0].closed and not store.conns[1].closed
        assert sleeps.waits == [0.0]  # attempt 0 after a connection that was up
    finally:
        await notifications.close()


async def test_an_outage_is_reported_once_and_the_attempts_back_off_until_one_succeeds():
    store = Store("down", "down", "down", "up", "up")
    notifications, (pauses,), sleeps = make(store, "syncd_provider_state")
    await notifications.start()  # returns after the first attempt, failed
    try:
        assert not notifications.listening and pauses.states == ["failed"]
        await settle(lambda: notifications.listening)
        assert pauses.states == ["failed", "listening"]
        assert sleeps.waits == [1.0, 2.0, 3.0]
        # the count starts again after a connection that was up
        store.conns[-1].terminate()
        await settle(lambda: len(store.conns) == 2 and notifications.listening)
        assert sleeps.waits == [1.0, 2.0, 3.0, 0.0]
    finally:
        await notifications.close()


async def test_close_ends_the_connection_without_reporting_a_loss():
    store = Store("up")
    notifications, (pauses,), _ = make(store, "syncd_provider_state")
    await notifications.start()
    await notifications.close()
    assert store.conns[0].closed and not notifications.listening
    assert pauses.states == ["listening"]


async def test_channels_are_subscribed_before_the_start_and_once_each():
    notifications, _, _ = make(Store("up"), "syncd_resync")
    with pytest.raises(ValueError, match="syncd_resync"):
        notifications.subscribe(Subscription(channel="syncd_resync", on_notify=print))
    await notifications.start()
    try:
        with pytest.raises(RuntimeError):
            notifications.subscribe(Subscription(channel="other", on_notify=print))
    finally:
        await notifications.close()
