"""``syncd run``: the scheduled, multi-replica service.

Lifecycle in one place: the store, the engine, the admin HTTP server, the
LISTEN connection and the APScheduler jobs are started in order and torn
down in reverse on one ``AsyncExitStack``. SIGTERM/SIGINT stop leasing, let
in-flight batches finish (up to ``[daemon] shutdown_grace``), release every
lease and exit 0; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from datetime import UTC, datetime
from typing import Any

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
        self.passes: dict[str, asyncio.Task[Any]] = {}
        self._failures = 0
        self._retry_at = 0.0
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._embedded: Any = None

    @property
    def ready(self) -> bool:
        return self.db_ok and self.schema_ok and not self.stopping.is_set()

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

        async with contextlib.AsyncExitStack() as stack:
            await self._start_admin(stack)
            await self._connect(stack)
            if self.store is None:  # stopped before the database ever answered
                return 0
            self.engine = Engine(self.store, self.cfg, replica=self.replica)
            await self.engine.start()
            stack.push_async_callback(self.engine.close)
            stack.push_async_callback(self._release_all)
            await self._refresh_health()
            if self.schema_ok:
                await self.engine.register_config_targets()
            tasks = [
                asyncio.create_task(self._listen_forever(), name="listen"),
                asyncio.create_task(self._health_forever(), name="health"),
                asyncio.create_task(self._watchdog_forever(), name="watchdog"),
            ]
            self._schedule()
            sd_notify("READY=1")
            log.info("daemon.started", listen=self.listen, providers=[p.name for p in self.cfg.providers])
            await self.stopping.wait()
            self.scheduler.shutdown(wait=False)
            await self._drain()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        log.info("daemon.stopped")
        return 0

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
        running = self.passes.get(provider)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(self._pass(provider), name=f"pass:{provider}")
        self.passes[provider] = task

    async def _pass(self, provider: str) -> None:
        assert self.engine is not None
        try:
            if await self.engine.store.fetchrow("peek_due", provider) is None:
                return  # nothing due: no run row for an idle tick
            await self.engine.sync(provider, trigger="schedule", stop=self.stopping)
            self._failures = 0
        except StoreUnavailable as exc:
            self._db_down(exc)
        except Exception:
            log.exception("daemon.pass_crashed", provider=provider)

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
        """Let in-flight passes finish their batch (they stop leasing at once)."""
        running = [t for t in self.passes.values() if not t.done()]
        if not running:
            return
        _done, pending = await asyncio.wait(running, timeout=self.cfg.daemon.shutdown_grace)
        for t in pending:
            t.cancel()
        if pending:
            log.warning("daemon.grace_expired", cancelled=len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    async def _release_all(self) -> None:
        if self.store is None:
            return
        try:
            await self.store.release_leases(self.replica)
        except StoreUnavailable as exc:  # they expire by themselves
            log.warning("daemon.leases_not_released", error=str(exc), lease_seconds=self.cfg.sync.lease)

    # -- background tasks ---------------------------------------------------------------
    async def _listen_forever(self) -> None:
        """LISTEN for `resync --enqueue` and other replicas' Retry-After pauses;
        reconnect with backoff whenever the database goes away."""
        assert self.store is not None and self.engine is not None
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                async with self.store.listen("syncd_resync", self._on_resync) as conn:
                    await self.engine.listen_for_peers()
                    lost = asyncio.Event()
                    conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                    backoff = 0.5
                    waiters = [asyncio.ensure_future(e.wait()) for e in (lost, self.stopping)]
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
        while not self.stopping.is_set():
            await self._refresh_health()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 2.0)

    async def _refresh_health(self) -> None:
        assert self.store is not None
        was = self.ready
        self.db_ok = await self.store.ping()
        metrics.DB_UP.set(1 if self.db_ok else 0)
        if self.db_ok:
            try:
                pending = await self.store.pending_migrations()
                self.schema_ok = not pending
                if pending:
                    log.error("daemon.schema_not_current", pending=pending, hint="run `syncd migrate`")
                for row in await self.store.fetch("gauges", [p.name for p in self.cfg.providers]):
                    metrics.TARGETS_DUE.labels(row["provider"]).set(row["due"])
                    metrics.PENDING_DELETIONS.labels(row["provider"]).set(row["held"])
            except StoreUnavailable:
                self.db_ok = False
        if self.ready and not was:
            self._failures, self._retry_at = 0, 0.0
            log.info("daemon.ready")
        elif was and not self.ready and not self.stopping.is_set():
            log.error("daemon.not_ready", database=self.db_ok, schema=self.schema_ok)

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
            "stopping": self.stopping.is_set(),
        }
        return web.json_response(body, status=200 if self.ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest())
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp


async def run_daemon(cfg: Config, listen: str | None = None) -> int:
    return await Daemon(cfg, listen=listen).run()
