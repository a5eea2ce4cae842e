"""Is the daemon ready: the database answers, its schema is current, the
last check met no error, and it is not stopping. Checked every 2 s; the
answer is what ``/readyz`` says and what lets a pass start."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import asyncpg
import structlog

from syncd import metrics
from syncd.engine import Engine
from syncd.errors import StoreUnavailable
from syncd.http import RetryPolicy
from syncd.service.backoff import Backoff
from syncd.store import Store

log = structlog.get_logger("syncd.daemon")

#: seconds between two health checks
CHECK_INTERVAL = 2.0


class Health:
    def __init__(
        self,
        providers: Sequence[str],
        stopping: asyncio.Event,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.providers = list(providers)
        self.stopping = stopping
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.db_ok = False
        self.schema_ok = False
        #: migrations not applied yet (shown by /readyz)
        self.pending_migrations: list[str] = []
        #: a database error that is not an outage (lock or statement timeout,
        #: permission, …) from the last check; not ready while set
        self.check_error: str | None = None
        #: a pass met the database down: no pass before the wait is over
        self.outage = Backoff.full_jitter(RetryPolicy(), clock)
        self._targets_registered = False

    def attach(self, store: Store, engine: Engine) -> None:
        self.store, self.engine = store, engine

    @property
    def ready(self) -> bool:
        return self.db_ok and self.schema_ok and self.check_error is None and not self.stopping.is_set()

    def may_start_a_pass(self) -> bool:
        return self.ready and not self.outage.waiting()

    def db_down(self, exc: Exception) -> None:
        """A pass found the database gone (the next check may not have yet)."""
        was = self.ready
        delay = self.outage.failed()
        if self.db_ok:
            log.error("store.unavailable", error=str(exc), retry_in=delay)
        self.db_ok = False
        metrics.DB_UP.set(0)
        self._changed(was)

    async def watch(self) -> None:
        """A check every 2 s; nothing may end this loop, or readiness freezes
        (frozen at not ready, no pass would ever start again)."""
        while not self.stopping.is_set():
            try:
                await self.refresh()
            except Exception as exc:
                self.check_error = f"{exc.__class__.__name__}: {exc}"
                log.exception("daemon.health_check_crashed", error=self.check_error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), CHECK_INTERVAL)

    async def refresh(self) -> None:
        was = self.ready
        try:
            await self._check_database()
            self.check_error = None
        except asyncpg.PostgresError as exc:
            # reachable but failing (lock or statement timeout, permissions, a
            # dropped table): not ready until a check passes again
            error = f"{exc.__class__.__name__}: {exc}"
            if error != self.check_error:
                log.warning("daemon.health_check_failed", error=error, sqlstate=exc.sqlstate)
            self.check_error = error
        self._changed(was)

    def _changed(self, was: bool) -> None:
        if self.ready and not was:
            self.outage.succeeded()
            log.info("daemon.ready")
        elif was and not self.ready and not self.stopping.is_set():
            log.error("daemon.not_ready", database=self.db_ok, schema=self.schema_ok, error=self.check_error)

    async def _check_database(self) -> None:
        """One check. The flags /readyz reads are set together, after every
        await: a probe between two awaits must not see the database up with
        the schema's state still unknown (pending_migrations empty, yet not
        current)."""
        assert self.store is not None and self.engine is not None
        try:
            pending = await self.store.pending_migrations() if await self.store.ping() else None
        except StoreUnavailable:
            pending = None
        if pending is None:
            self.db_ok = False
            metrics.DB_UP.set(0)
            return
        self.db_ok = True
        metrics.DB_UP.set(1)
        self._schema_state(pending)
        if pending:
            return  # the tables the gauges read may not exist yet
        try:
            await self._register_config_targets(self.engine)
            await self._update_gauges(self.store)
        except StoreUnavailable:
            self.db_ok = False
            metrics.DB_UP.set(0)

    def _schema_state(self, pending: list[str]) -> None:
        self.schema_ok = not pending
        if pending != self.pending_migrations:
            if pending:
                log.error("daemon.schema_not_current", pending=pending, hint="run `syncd migrate`")
            else:
                log.info("daemon.schema_current")
        self.pending_migrations = pending

    async def _register_config_targets(self, engine: Engine) -> None:
        if not self._targets_registered:  # once: they needed the schema
            await engine.register_config_targets()
            self._targets_registered = True

    async def _update_gauges(self, store: Store) -> None:
        for row in await store.gauges(self.providers):
            metrics.TARGETS_DUE.labels(row["provider"]).set(row["due"])
            metrics.PENDING_DELETIONS.labels(row["provider"]).set(row["held"])
        unprocessed, age = await store.outbox_backlog()
        metrics.OUTBOX_UNPROCESSED.set(unprocessed)
        metrics.OUTBOX_OLDEST_AGE.set(age)
