"""The service around the engine: ``syncd run`` (``daemon``), its readiness
(``health``), the admin HTTP endpoints (``admin``), systemd's notify protocol
(``notify``) and the waits after failures (``backoff``)."""

from __future__ import annotations

from syncd.service.daemon import CLEANUP_TIMEOUT, CRASH_RETRY, Daemon, run_daemon
from syncd.service.notify import sd_notify

__all__ = ["CLEANUP_TIMEOUT", "CRASH_RETRY", "Daemon", "run_daemon", "sd_notify"]
