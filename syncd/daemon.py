"""``syncd run`` lives in ``syncd.service``; this name stays for its importers."""

from __future__ import annotations

from syncd.service import CLEANUP_TIMEOUT, CRASH_RETRY, Daemon, run_daemon, sd_notify

__all__ = ["CLEANUP_TIMEOUT", "CRASH_RETRY", "Daemon", "run_daemon", "sd_notify"]
