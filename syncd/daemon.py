"""``syncd run``: the scheduled, multi-replica service.

Lifecycle in one place: the store, the engine, the admin HTTP server, the
LISTEN connection and the APScheduler jobs are started in order and torn
down in reverse on one ``AsyncExitStack``. SIGTERM/SIGINT stop leasing, let
in-flight batches finish (up to ``[daemon] shutdown_grace``), release every
lease and exit 0; a second signal exits at once. The clean-up after the grace
is bounded too (``CLEANUP_TIMEOUT``): against a database that no longer
answers, the leases are left to expire and the process still exits 0 before
systemd's ``TimeoutStopSec`` (45 s in ``deploy/``) kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from syncd import embedded, metrics
from syncd.config import Config
from syncd.engine import Engine, default_replica
from syncd.errors import StoreUnavailable
from syncd.store import Store

log = structlog.get_logger("syncd.daemon")

#: seconds the clean-up after the drain (release leases, close pools and the
#: admin server) may take; then at most 3 s more to abandon what is left. With
#: the default grace (30 s) that stays inside the 45 s deploy/ gives systemd
#: (TimeoutStopSec) and Kubernetes (terminationGracePeriodSeconds)
CLEANUP_TIMEOUT = 10.0
#: after a pass crashed, wait about base * 2**(n-1) before the provider's next
#: pass (n crashes in a row; equal jitter), never more than the cap or the
#: provider's interval
CRASH_BACKOFF_BASE = 2.0
CRASH_BACKOFF_CAP = 300.0


def sd_notify(message: str) -> None:
    """systemd's notify protocol (sd_notify(3)): a datagram to $NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


class Daemon:
    def __init__(self, cfg: Config, *, listen: str | None = None) -> None:
        self.cfg = cfg
        self.listen = listen or cfg.daemon.listen
        self.replica = cfg.daemon.replica or default_replica()
        self.stopping = asyncio.Event()
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.db_ok = False
        self.schema_ok = False
        #: migrations not applied yet (shown by /readyz)
        self.pending_migrations: list[str] = []
        #: a database error that is not an outage (lock or statement timeout,
        #: permission, …) from the last health check; not ready while set
        self.check_error: str | None = None
        self.passes: dict[str, asyncio.Task[Any]] = {}
        self._failures = 0
        self._retry_at = 0.0
        #: per provider: passes crashed in a row, and no new pass before this
        self._crashes: dict[str, int] = {}
        self._crash_retry_at: dict[str, float] = {}
        self._targets_registered = False
        self.cleanup_timeout = CLEANUP_TIMEOUT
        self.crash_backoff_base = CRASH_BACKOFF_BASE
        self.crash_backoff_cap = CRASH_BACKOFF_CAP
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._embedded: Any = None

    @property
    def ready(self) -> bool:
        return self.db_ok and self.schema_ok and self.check_error is None and not self.stopping.is_set()

    # -- lifecycle -----------------------------------------------------------------
    async def run(self) -> int:
        structlog.contextvars.bind_contextvars(replica=self.replica)
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal(signum: int) -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                log.warning("daemon.exit_now", signal=signal.Signals(signum).name)
                os._exit(1)
            log.info(
                "daemon.stopping",
                signal=signal.Signals(signum).name,
                grace_seconds=self.cfg.daemon.shutdown_grace,
            )
            sd_notify("STOPPING=1")
            self.stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)

        stack = contextlib.AsyncExitStack()
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._start_admin(stack)
            await self._connect(stack)
            if self.store is None:  # stopped before the database ever answered
                return 0
            self.engine = Engine(self.store, self.cfg, replica=self.replica)
            await self.engine.start()
            stack.push_async_callback(self.engine.close)
            stack.push_async_callback(self._release_all)
            await self._refresh_health()
            tasks = [
                asyncio.create_task(self._listen_forever(), name="listen"),
                asyncio.create_task(self._health_forever(), name="health"),
                asyncio.create_task(self._watchdog_forever(), name="watchdog"),
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
                # an interrupted Engine.close left its HTTP sessions open; its
                # LISTEN connection is gone by now, so this touches no database
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.engine.close(), 1.0)
        if not job.done():
            log.warning("daemon.cleanup_abandoned")
        elif not job.cancelled() and (exc := job.exception()) is not None:
            log.warning("daemon.cleanup_failed", error=f"{exc.__class__.__name__}: {exc}")

    async def _connect(self, stack: contextlib.AsyncExitStack) -> None:
        """Connect (or start the embedded database), retrying until it answers."""
        url = self.cfg.database.resolved_url()
        if not url:
            self._embedded = await asyncio.to_thread(embedded.start, self.cfg.state_dir)
            url = embedded.url(self._embedded)
        # min_size=0: the pool opens without the database, and reconnects by itself
        self.store = await Store.connect(url, min_size=0, max_size=self.cfg.database.pool_max)
        stack.push_async_callback(self.store.close)

    async def _start_admin(self, stack: contextlib.AsyncExitStack) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host, _, port = self.listen.rpartition(":")
        site = web.TCPSite(runner, host.strip("[]") or "0.0.0.0", int(port))
        await site.start()
        stack.push_async_callback(runner.cleanup)

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
            if pc.cron:
                self.scheduler.add_job(
                    self._full_resync,
                    CronTrigger.from_crontab(pc.cron, timezone=UTC),
                    args=[pc.name],
                    id=f"cron:{pc.name}",
                    max_instances=1,
                    coalesce=True,
                )
        self.scheduler.start()

    async def _tick(self, provider: str) -> None:
        """One scheduled look at a provider: start a pass unless one runs."""
        if self.stopping.is_set() or not self.ready or time.monotonic() < self._retry_at:
            return
        if time.monotonic() < self._crash_retry_at.get(provider, 0.0):
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
            self._failures = 0
            self._crashes.pop(provider, None)
            self._crash_retry_at.pop(provider, None)
        except StoreUnavailable as exc:
            self._db_down(exc)
        except Exception as exc:
            self._pass_crashed(provider, exc)

    def _pass_crashed(self, provider: str, exc: Exception) -> None:
        """A bug or a database error that is not an outage: the next pass would
        most likely crash the same way, so back off instead of re-leasing and
        re-fetching the same batches every tick."""
        crashes = self._crashes.get(provider, 0) + 1
        self._crashes[provider] = crashes
        interval = self.cfg.provider(provider).interval
        cap = max(self.crash_backoff_base, min(self.crash_backoff_cap, interval))
        ceiling = min(cap, self.crash_backoff_base * 2 ** min(crashes - 1, 30))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # equal jitter: never shorter than half
        self._crash_retry_at[provider] = time.monotonic() + delay
        log.error(
            "sync.pass_crashed",
            provider=provider,
            error=f"{exc.__class__.__name__}: {exc}",
            crashes=crashes,
            retry_in=round(delay, 3),
            exc_info=exc,
        )

    async def _full_resync(self, provider: str) -> None:
        assert self.engine is not None
        try:
            n = await self.engine.store.make_due(provider, None)
            log.info("daemon.cron_resync", provider=provider, targets=n)
        except StoreUnavailable as exc:
            self._db_down(exc)

    def _db_down(self, exc: Exception) -> None:
        self._failures += 1
        delay = min(30.0, 0.5 * 2 ** min(self._failures, 6))
        self._retry_at = time.monotonic() + delay
        if self.db_ok:
            log.error("store.unavailable", error=str(exc), retry_in=delay)
        self.db_ok = False
        metrics.DB_UP.set(0)

    async def _drain(self) -> None:
        """Let in-flight passes finish their batch (they stop leasing at once);
        those still running after the grace are cancelled, and unwind within
        the clean-up's time limit (``_cleanup``)."""
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

    # -- background tasks ---------------------------------------------------------------
    async def _listen_forever(self) -> None:
        """LISTEN for `resync --enqueue` and other replicas' Retry-After pauses;
        reconnect with backoff whenever the database goes away."""
        assert self.store is not None and self.engine is not None
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                async with self.store.listen({"syncd_resync": self._on_resync}) as conn:
                    # the engine listens from its start: set up again only what was lost
                    # (replacing a live listener at start-up raced with its first pauses)
                    if not self.engine.listening:
                        await self.engine.listen_for_peers()
                    lost = asyncio.Event()
                    conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                    if self.engine.listening:
                        backoff = 0.5
                    # either connection lost: the loop sets up what is gone
                    events = (lost, self.engine.peers_lost, self.stopping)
                    waiters = [asyncio.ensure_future(e.wait()) for e in events]
                    try:
                        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for w in waiters:
                            w.cancel()
            except StoreUnavailable:
                pass
            except Exception as exc:  # a broken LISTEN connection must not kill the daemon
                log.warning("daemon.listen_failed", error=str(exc))
            if self.stopping.is_set():
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 15.0)

    def _on_resync(self, payload: str) -> None:
        log.info("daemon.resync_requested", provider=payload)
        job = self.scheduler.get_job(f"sync:{payload}")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    async def _health_forever(self) -> None:
        """Readiness every 2 s; nothing may end this loop, or readiness freezes
        (frozen at not ready, no pass would ever start again)."""
        while not self.stopping.is_set():
            try:
                await self._refresh_health()
            except Exception as exc:
                self.check_error = f"{exc.__class__.__name__}: {exc}"
                log.exception("daemon.health_check_crashed", error=self.check_error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 2.0)

    async def _refresh_health(self) -> None:
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
        if self.ready and not was:
            self._failures, self._retry_at = 0, 0.0
            log.info("daemon.ready")
        elif was and not self.ready and not self.stopping.is_set():
            log.error("daemon.not_ready", database=self.db_ok, schema=self.schema_ok, error=self.check_error)

    async def _check_database(self) -> None:
        assert self.store is not None and self.engine is not None
        self.db_ok = await self.store.ping()
        metrics.DB_UP.set(1 if self.db_ok else 0)
        if not self.db_ok:
            return
        try:
            pending = await self.store.pending_migrations()
            self.schema_ok = not pending
            if pending != self.pending_migrations:
                if pending:
                    log.error("daemon.schema_not_current", pending=pending, hint="run `syncd migrate`")
                else:
                    log.info("daemon.schema_current")
            self.pending_migrations = pending
            if pending:
                return  # the tables the gauges read may not exist yet
            if not self._targets_registered:
                await self.engine.register_config_targets()
                self._targets_registered = True
            for row in await self.store.gauges([p.name for p in self.cfg.providers]):
                metrics.TARGETS_DUE.labels(row["provider"]).set(row["due"])
                metrics.PENDING_DELETIONS.labels(row["provider"]).set(row["held"])
        except StoreUnavailable:
            self.db_ok = False
            metrics.DB_UP.set(0)

    async def _watchdog_forever(self) -> None:
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if not usec:
            return
        while not self.stopping.is_set():
            sd_notify("WATCHDOG=1")  # the event loop is alive and scheduling
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), usec / 2e6)

    # -- admin HTTP ------------------------------------------------------------------
    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "replica": self.replica})

    async def _readyz(self, _request: web.Request) -> web.Response:
        body = {
            "ready": self.ready,
            "database": self.db_ok,
            "schema_current": self.schema_ok,
            "pending_migrations": self.pending_migrations,
            "error": self.check_error,
            "stopping": self.stopping.is_set(),
            # a pause is not "not ready" (the daemon waits as asked), but an
            # operator must see it: it may be why nothing moves
            "paused": {
                name: rt.gate.paused_until.isoformat()
                for name, rt in (self.engine.runtimes.items() if self.engine else ())
                if rt.gate.paused() and rt.gate.paused_until is not None
            },
        }
        return web.json_response(body, status=200 if self.ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest())
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp


async def run_daemon(cfg: Config, listen: str | None = None) -> int:
    return await Daemon(cfg, listen=listen).run()
