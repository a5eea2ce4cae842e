"""The daemon's readiness against a stand-in store: each change logged once,
whoever noticed it (a pass or the health check), and the wait after a pass
met the database down. No database, a fixed clock."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg
import structlog

from syncd.errors import StoreUnavailable
from syncd.service.health import Health


class Store:
    def __init__(self) -> None:
        self.up = True
        self.pending: list[str] = []
        self.error: Exception | None = None

    async def ping(self) -> bool:
        return self.up

    async def pending_migrations(self) -> list[str]:
        return list(self.pending)

    async def outbox_backlog(self) -> tuple[int, float]:
        return 0, 0.0

    async def gauges(self, providers: list[str]) -> list[dict[str, Any]]:
        if self.error is not None:
            raise self.error
        return [{"provider": p, "due": 0, "held": 0} for p in providers]


class Engine:
    def __init__(self) -> None:
        self.registered = 0

    async def register_config_targets(self) -> None:
        self.registered += 1


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def health() -> tuple[Health, Store, Engine, Clock]:
    store, engine, clock = Store(), Engine(), Clock()
    h = Health(["corp"], asyncio.Event(), clock=clock)
    h.attach(cast(Any, store), cast(Any, engine))
    return h, store, engine, clock


def events(logs: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in logs]


async def test_ready_once_the_database_answers_with_the_current_schema():
    h, _, engine, _ = health()
    assert not h.ready
    with structlog.testing.capture_logs() as logs:
        await h.refresh()
        await h.refresh()
    assert h.ready and events(logs) == ["daemon.ready"]
    assert engine.registered == 1  # the config's user_ids, once


async def test_an_outage_a_pass_noticed_first_is_logged_as_not_ready_once():
    """store.unavailable and daemon.not_ready from the pass; the health check
    that then finds the database gone says nothing more; back: daemon.ready."""
    h, store, _, _ = health()
    await h.refresh()
    store.up = False
    with structlog.testing.capture_logs() as logs:
        h.db_down(StoreUnavailable("connection refused"))
        await h.refresh()
        h.db_down(StoreUnavailable("connection refused"))  # a second pass: already known
        store.up = True
        await h.refresh()
    assert events(logs) == ["store.unavailable", "daemon.not_ready", "daemon.ready"]


async def test_an_outage_the_health_check_noticed_first_is_logged_as_not_ready_once():
    h, store, _, _ = health()
    await h.refresh()
    store.up = False
    with structlog.testing.capture_logs() as logs:
        await h.refresh()
        h.db_down(StoreUnavailable("connection refused"))
        await h.refresh()
    assert events(logs) == ["daemon.not_ready"]


async def test_no_pass_starts_before_the_wait_after_an_outage_and_being_ready_ends_it():
    h, _, _, clock = health()
    await h.refresh()
    h.db_down(StoreUnavailable("gone"))
    assert h.outage.retry_at > clock.now and not h.may_start_a_pass()
    await h.refresh()  # the database answers again
    assert h.ready and h.may_start_a_pass()
    assert h.outage.failures == 0


async def test_an_error_that_is_not_an_outage_holds_readiness_until_a_check_passes():
    h, store, _, _ = health()
    await h.refresh()
    store.error = asyncpg.UndefinedTableError("relation syncd.pending_deletions does not exist")
    with structlog.testing.capture_logs() as logs:
        await h.refresh()
        await h.refresh()
        assert not h.ready and "UndefinedTableError" in (h.check_error or "")
        store.error = None
        await h.refresh()
    assert h.ready
    assert events(logs) == ["daemon.health_check_failed", "daemon.not_ready", "daemon.ready"]


async def test_an_unmigrated_schema_is_not_ready_and_said_once():
    h, store, engine, _ = health()
    store.pending = ["007_outbox.sql"]
    with structlog.testing.capture_logs() as logs:
        await h.refresh()
        await h.refresh()
        store.pending = []
        await h.refresh()
    assert events(logs) == ["daemon.schema_not_current", "daemon.schema_current", "daemon.ready"]
    assert h.pending_migrations == [] and engine.registered == 1


async def test_stopping_is_not_ready_and_not_reported_as_a_failure():
    h, _, _, _ = health()
    await h.refresh()
    h.stopping.set()
    with structlog.testing.capture_logs() as logs:
        await h.refresh()
    assert not h.ready and events(logs) == []


async def test_a_probe_during_a_check_never_sees_the_database_up_with_the_schema_unknown():
    """/readyz may answer between the check's awaits: while the migrations are
    being read it must not say "database up, not current, nothing pending"
    (the state CI once caught): the flags change together, after the reads."""
    h, store, _, _ = health()
    store.pending = ["014_x"]
    reading, release = asyncio.Event(), asyncio.Event()
    plain = store.pending_migrations

    async def slow() -> list[str]:
        reading.set()
        await release.wait()
        return await plain()

    store.pending_migrations = slow  # type: ignore[method-assign]
    check = asyncio.create_task(h.refresh())
    await asyncio.wait_for(reading.wait(), 5)
    seen = (h.db_ok, h.schema_ok, list(h.pending_migrations))
    release.set()
    await asyncio.wait_for(check, 5)
    assert seen == (False, False, [])  # nothing known yet: not "up with nothing pending"
    assert (h.db_ok, h.schema_ok, h.pending_migrations) == (True, False, ["014_x"])
