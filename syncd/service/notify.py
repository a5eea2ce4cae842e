"""systemd's notify protocol (sd_notify(3)): readiness, stopping, and the
watchdog's keep-alive, as datagrams to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping


def sd_notify(message: str, environ: Mapping[str, str] = os.environ) -> None:
    """Send ``message`` (``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``) to the
    service manager; nothing outside systemd (no ``$NOTIFY_SOCKET``)."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between keep-alives: half of systemd's ``WatchdogSec``
    (``$WATCHDOG_USEC``), as sd_watchdog_enabled(3) advises; None without one."""
    usec = int(environ.get("WATCHDOG_USEC", "0") or 0)
    return usec / 2e6 if usec > 0 else None


async def watchdog(stopping: asyncio.Event, environ: Mapping[str, str] = os.environ) -> None:
    """Tell systemd the event loop is alive and scheduling, until stopping."""
    interval = watchdog_interval(environ)
    if interval is None:
        return
    while not stopping.is_set():
        sd_notify("WATCHDOG=1", environ)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
