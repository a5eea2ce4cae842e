"""``syncd run``: the scheduled, multi-replica service.

Lifecycle in one place: the admin HTTP server, the store, the engine, the
process's one LISTEN connection and the APScheduler jobs are started in order
and torn down in reverse on one ``AsyncExitStack``. SIGTERM/SIGINT stop
leasing, let in-flight batches finish (up to ``[daemon] shutdown_grace``),
release every lease and exit 0; a second signal exits at once. The clean-up
after the grace is bounded too (``CLEANUP_TIMEOUT``): against a database that
no longer answers, the leases are left to expire and the process still exits
0 before systemd's ``TimeoutStopSec`` (45 s in ``deploy/``) kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd import embedded
from syncd.config import Config
from syncd.engine import LISTEN_RETRY, Engine, default_replica
from syncd.errors import StoreUnavailable, SyncdError
from syncd.http import RetryPolicy
from syncd.service.admin import Admin
from syncd.service.backoff import Backoff
from syncd.service.health import Health
from syncd.service.notify import sd_notify, watchdog
from syncd.service.retention import apply_retention, prune_every
from syncd.store import Store
from syncd.store.listener import Notifications, Subscription

log = structlog.get_logger("syncd.daemon")

#: seconds the clean-up after the drain (release leases, close pools and the
#: admin server) may take; then at most 3 s more to abandon what is left. With
#: the default grace (30 s) that stays inside the 45 s deploy/ gives systemd
#: (TimeoutStopSec) and Kubernetes (terminationGracePeriodSeconds)
CLEANUP_TIMEOUT = 10.0
#: after a pass crashed, wait about 2 s * 2**(n-1) before the provider's next
#: pass (n crashes in a row; never shorter than half that), never more than
#: 300 s or the provider's interval
CRASH_RETRY = RetryPolicy(backoff_base=2.0, backoff_cap=300.0)
#: `syncd resync --enqueue` asks the daemons to look at a provider now
RESYNC_CHANNEL = "syncd_resync"
#: how often the daemon looks whether a provider's listing is due (seconds)
DISCOVERY_LOOK = 30.0


class Daemon:
    def __init__(
        self, cfg: Config, *, listen: str | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg = cfg
        self.listen = listen or cfg.daemon.listen
        self.replica = cfg.daemon.replica or default_replica()
        self.clock = clock
        self.stopping = asyncio.Event()
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.health = Health([p.name for p in cfg.providers], self.stopping, clock=clock)
        self.passes: dict[str, asyncio.Task[Any]] = {}
        #: per provider: its listing in progress (``discover``)
        self.discoveries: dict[str, asyncio.Task[Any]] = {}
        #: per provider: its passes that crashed in a row
        self.crashes: dict[str, Backoff] = {}
        self.cleanup_timeout = CLEANUP_TIMEOUT
        self.crash_retry = CRASH_RETRY
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._embedded: Any = None
        self._signals = 0

    @property
    def ready(self) -> bool:
        return self.health.ready

    # -- lifecycle -----------------------------------------------------------------
    async def run(self) -> int:
        structlog.contextvars.bind_contextvars(replica=self.replica)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        stack = contextlib.AsyncExitStack()
        tasks: list[asyncio.Task[None]] = []
        try:
            admin = Admin(self.health, replica=self.replica, paused=self._paused)
            await admin.start(self.listen, stack)
            await self._connect(stack)
            if self.store is None:  # stopped before the database ever answered
                return 0
            await self._start_engine(self.store, stack)
            await self.health.refresh()
            tasks = [
                asyncio.create_task(self.health.watch(), name="health"),
                asyncio.create_task(watchdog(self.stopping), name="watchdog"),
            ]
            self._schedule()
            sd_notify("READY=1")
            log.info("daemon.started", listen=self.listen, providers=[p.name for p in self.cfg.providers])
            await self.stopping.wait()
        finally:
            if self.scheduler.running:  # no new pass from here on
                self.scheduler.shutdown(wait=False)
            await self._drain()
            await self._cleanup(stack, tasks)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("daemon.stopped")
        return 0

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("daemon.exit_now", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info(
            "daemon.stopping",
            signal=signal.Signals(signum).name,
            grace_seconds=self.cfg.daemon.shutdown_grace,
        )
        sd_notify("STOPPING=1")
        self.stopping.set()

    async def _connect(self, stack: contextlib.AsyncExitStack) -> None:
        """Open the pool (or start the embedded database first)."""
        url = self.cfg.database.resolved_url()
        if not url:
            embedded.announce(self.cfg.state_dir, self.cfg.database.embedded_reason(self.cfg.source))
            self._embedded = await asyncio.to_thread(embedded.start, self.cfg.state_dir)
            url = embedded.url(self._embedded)
        # min_size=0: the pool opens without the database, and reconnects by itself
        self.store = await Store.connect(url, min_size=0, max_size=self.cfg.database.pool_max)
        stack.push_async_callback(self.store.close)

    async def _start_engine(self, store: Store, stack: contextlib.AsyncExitStack) -> None:
        """The engine, and the one LISTEN connection that serves it and us."""
        self.engine = Engine(store, self.cfg, replica=self.replica, listen=False)
        await self.engine.start()
        stack.push_async_callback(self.engine.close)
        stack.push_async_callback(self._release_all)
        self.health.attach(store, self.engine)
        notifications = Notifications(store, backoff=LISTEN_RETRY.backoff)
        notifications.subscribe(
            Subscription(channel=RESYNC_CHANNEL, on_notify=self._on_resync, on_lost=self._listen_failed)
        )
        for subscription in self.engine.subscriptions:  # other replicas' pauses
            notifications.subscribe(subscription)
        await notifications.start()
        stack.push_async_callback(notifications.close)

    def _paused(self) -> dict[str, datetime]:
        return self.engine.paused() if self.engine is not None else {}

    async def _cleanup(self, stack: contextlib.AsyncExitStack, tasks: list[asyncio.Task[None]]) -> None:
        """Stop the background tasks, release the leases, close the pools and
        the admin server: within ``cleanup_timeout``, whatever the database does."""

        async def unwind() -> None:
            # passes still running were cancelled when the grace expired; they
            # record their run and release their leases as they unwind
            passes = list(self.passes.values())
            for t in (*tasks, *passes):
                t.cancel()
            try:
                await asyncio.gather(*tasks, *passes, return_exceptions=True)
            finally:
                await stack.aclose()

        job = asyncio.create_task(unwind(), name="cleanup")
        done, _ = await asyncio.wait({job}, timeout=self.cleanup_timeout)
        if not done:
            await self._abandon(job)
        if not job.done():
            log.warning("daemon.cleanup_abandoned")
        elif not job.cancelled() and (exc := job.exception()) is not None:
            log.warning("daemon.cleanup_failed", error=f"{exc.__class__.__name__}: {exc}")

    async def _abandon(self, job: asyncio.Task[None]) -> None:
        """The clean-up ran out of time: cut the database off and end it."""
        log.warning(
            "daemon.cleanup_timed_out",
            timeout_seconds=self.cleanup_timeout,
            hint="leases not released expire by themselves",
            lease_seconds=self.cfg.sync.lease,
        )
        if self.store is not None:
            self.store.terminate()  # whatever waits on a pooled connection fails now
        # each cancellation interrupts one wait of the exit stack (a silent LISTEN
        # connection's close, say, which then aborts it): repeat until it has run
        # through, briefly
        deadline = time.monotonic() + 2.0
        while not job.done() and time.monotonic() < deadline:
            job.cancel()
            await asyncio.wait({job}, timeout=0.1)
        if self.engine is not None:
            # an interrupted Engine.close left its HTTP sessions open; it owns no
            # database connection, so this touches no database
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.engine.close(), 1.0)

    async def _drain(self) -> None:
        """Let in-flight passes finish their batch (they stop leasing at once);
        those still running after the grace are cancelled, and unwind within
        the clean-up's time limit (``_cleanup``)."""
        listings = [t for t in self.discoveries.values() if not t.done()]
        for t in listings:  # a listing writes nothing until its end: stop it now
            t.cancel()
        if listings:
            await asyncio.wait(listings, timeout=self.cleanup_timeout)
        running = [t for t in self.passes.values() if not t.done()]
        if not running:
            return
        _done, pending = await asyncio.wait(running, timeout=self.cfg.daemon.shutdown_grace)
        for t in pending:
            t.cancel()
        if pending:
            log.warning("daemon.grace_expired", cancelled=len(pending))

    async def _release_all(self) -> None:
        if self.store is None:
            return
        try:
            await self.store.release_leases(self.replica)
        except (StoreUnavailable, asyncpg.PostgresError) as exc:  # they expire by themselves
            log.warning("daemon.leases_not_released", error=str(exc), lease_seconds=self.cfg.sync.lease)

    # -- scheduling ------------------------------------------------------------------
    def _schedule(self) -> None:
        for pc in self.cfg.providers:
            self.scheduler.add_job(
                self._tick,
                IntervalTrigger(seconds=max(self.cfg.daemon.poll_interval, 0.1)),
                args=[pc.name],
                id=f"sync:{pc.name}",
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(UTC),
            )
            if pc.discover is not None:
                # a cheap look (one UPDATE) this often; the lease's next_at says
                # when the listing is due, so replicas share one schedule
                self.scheduler.add_job(
                    self._discover_tick,
                    IntervalTrigger(seconds=max(min(pc.discover, DISCOVERY_LOOK), 0.1)),
                    args=[pc.name],
                    id=f"discover:{pc.name}",
                    max_instances=1,
                    coalesce=True,
                    next_run_time=datetime.now(UTC),
                )
            if pc.refresh == "feed":
                self.scheduler.add_job(
                    self._feed_tick,
                    IntervalTrigger(seconds=pc.feed_interval),
                    args=[pc.name],
                    id=f"feed:{pc.name}",
                    max_instances=1,
                    coalesce=True,
                    next_run_time=datetime.now(UTC),
                )
            if pc.cron:
                self.scheduler.add_job(
                    self._full_resync,
                    CronTrigger.from_crontab(pc.cron, timezone=UTC),
                    args=[pc.name],
                    id=f"cron:{pc.name}",
                    max_instances=1,
                    coalesce=True,
                )
        every = prune_every(self.cfg.outbox)
        if every is not None:
            self.scheduler.add_job(
                self._retention_tick,
                IntervalTrigger(seconds=every),
                id="outbox:retention",
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(UTC),
            )
        self.scheduler.start()

    async def _retention_tick(self) -> None:
        """Prune the outbox and the run records older than ``[outbox] retention``."""
        if self.stopping.is_set() or not self.health.ready or self.engine is None:
            return
        try:
            await apply_retention(self.engine.store, self.cfg.outbox)
        except StoreUnavailable as exc:
            self.health.db_down(exc)
        except Exception as exc:  # a lock timeout, a bug: logged, tried again next time
            log.error("outbox.prune_failed", error=f"{exc.__class__.__name__}: {exc}", exc_info=exc)

    async def _tick(self, provider: str) -> None:
        """One scheduled look at a provider: start a pass unless one runs."""
        if self.stopping.is_set() or not self.health.may_start_a_pass():
            return
        if self._crashes(provider).waiting():
            return  # its last pass crashed: backing off
        running = self.passes.get(provider)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(self._pass(provider), name=f"pass:{provider}")
        self.passes[provider] = task

    async def _pass(self, provider: str) -> None:
        assert self.engine is not None
        try:
            if not await self.engine.store.anything_due(provider):
                return  # nothing due: no run row for an idle tick
            await self.engine.sync(provider, trigger="schedule", stop=self.stopping)
            self.health.outage.succeeded()
            self._crashes(provider).succeeded()
        except StoreUnavailable as exc:
            self.health.db_down(exc)
        except Exception as exc:
            self._pass_crashed(provider, exc)

    async def _feed_tick(self, provider: str) -> None:
        """A walk of the provider's change feed; a pass for what it made due."""
        if self.stopping.is_set() or not self.health.may_start_a_pass():
            return
        assert self.engine is not None
        try:
            report = await self.engine.walk_feed(provider)
        except StoreUnavailable as exc:
            self.health.db_down(exc)
            return
        except SyncdError as exc:  # provider down, rate limited: the next walk asks again
            log.warning("feed.failed", provider=provider, error=str(exc))
            return
        except Exception as exc:  # a bug: logged, the schedule tries again
            log.error(
                "feed.crashed", provider=provider, error=f"{exc.__class__.__name__}: {exc}", exc_info=exc
            )
            return
        if report.made_due:
            self._sync_now(provider)

    async def _discover_tick(self, provider: str) -> None:
        """A scheduled look at a provider's listing: start one unless one runs."""
        if self.stopping.is_set() or not self.health.may_start_a_pass():
            return
        running = self.discoveries.get(provider)
        if running is not None and not running.done():
            return
        self.discoveries[provider] = asyncio.create_task(
            self._discover(provider), name=f"discover:{provider}"
        )

    async def _discover(self, provider: str) -> None:
        assert self.engine is not None
        try:
            report = await self.engine.discover_if_due(provider)
        except StoreUnavailable as exc:
            self.health.db_down(exc)
            return
        except Exception as exc:  # a bug: logged, the schedule tries again
            log.error(
                "discovery.crashed", provider=provider, error=f"{exc.__class__.__name__}: {exc}", exc_info=exc
            )
            return
        if report is not None and report.ok and (report.new or report.missing):
            self._sync_now(provider)  # the enrolled and the missing are due

    def _crashes(self, provider: str) -> Backoff:
        if provider not in self.crashes:
            # never longer than the provider's interval: it would wait that long anyway
            base, cap = self.crash_retry.backoff_base, self.crash_retry.backoff_cap
            interval = self.cfg.provider(provider).interval
            policy = dataclasses.replace(self.crash_retry, backoff_cap=max(base, min(cap, interval)))
            self.crashes[provider] = Backoff.growing(policy, self.clock)
        return self.crashes[provider]

    def _pass_crashed(self, provider: str, exc: Exception) -> None:
        """A bug or a database error that is not an outage: the next pass would
        most likely crash the same way, so back off instead of re-leasing and
        re-fetching the same batches every tick."""
        crashes = self._crashes(provider)
        delay = crashes.failed()
        log.error(
            "sync.pass_crashed",
            provider=provider,
            error=f"{exc.__class__.__name__}: {exc}",
            crashes=crashes.failures,
            retry_in=round(delay, 3),
            exc_info=exc,
        )

    async def _full_resync(self, provider: str) -> None:
        assert self.engine is not None
        try:
            n = await self.engine.store.make_due(provider, None)
            log.info("daemon.cron_resync", provider=provider, targets=n)
        except StoreUnavailable as exc:
            self.health.db_down(exc)

    # -- notifications ----------------------------------------------------------------
    def _on_resync(self, payload: str) -> None:
        log.info("daemon.resync_requested", provider=payload)
        self._sync_now(payload)

    def _sync_now(self, provider: str) -> None:
        """Look at the provider's due targets now, not at the next tick."""
        job = self.scheduler.get_job(f"sync:{provider}")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def _listen_failed(self, error: Exception | None) -> None:
        # an outage is the health check's to report; anything else is news
        if error is not None and not isinstance(error, StoreUnavailable):
            log.warning("daemon.listen_failed", error=str(error))


async def run_daemon(cfg: Config, listen: str | None = None) -> int:
    return await Daemon(cfg, listen=listen).run()
