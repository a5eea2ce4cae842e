"""The admin HTTP server: ``/healthz`` (the process answers), ``/readyz``
(ready to sync: 200, else 503, with the reasons) and ``/metrics``
(Prometheus' text format)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import datetime

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from syncd.errors import SyncdError
from syncd.service.health import Health

log = structlog.get_logger("syncd.daemon")


class Admin:
    def __init__(self, health: Health, *, replica: str, paused: Callable[[], dict[str, datetime]]) -> None:
        self.health = health
        self.replica = replica
        #: the providers paused now, and until when
        self.paused = paused

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def start(self, listen: str, stack: contextlib.AsyncExitStack) -> None:
        """Serve on ``listen`` (``host:port``, ``[v6]:port``, ``:port`` for
        every address) until ``stack`` closes."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        host, _, port = listen.rpartition(":")
        site = web.TCPSite(runner, host.strip("[]") or "0.0.0.0", int(port))
        try:
            await site.start()
        except OSError as exc:
            # a port in use (another syncd?), an address not on this host, a privileged port
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            log.error("admin.listen_failed", listen=listen, error=reason)
            raise SyncdError(
                f"cannot serve /healthz and /metrics on {listen}: {reason}"
                " (set [daemon] listen, $SYNCD_LISTEN or --listen)"
            ) from None

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "replica": self.replica})

    async def readyz(self, _request: web.Request) -> web.Response:
        health = self.health
        body = {
            "ready": health.ready,
            "database": health.db_ok,
            "schema_current": health.schema_ok,
            "pending_migrations": health.pending_migrations,
            "error": health.check_error,
            "stopping": health.stopping.is_set(),
            # a pause is not "not ready" (the daemon waits as asked), but an
            # operator must see it: it may be why nothing moves
            "paused": {name: until.isoformat() for name, until in self.paused().items()},
        }
        return web.json_response(body, status=200 if health.ready else 503)

    async def metrics(self, _request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest())
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp
