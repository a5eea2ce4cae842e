"""systemd's notify protocol: datagrams to $NOTIFY_SOCKET, the watchdog's
interval from $WATCHDOG_USEC. A Unix socket in a temporary directory."""

from __future__ import annotations

import asyncio
import socket

import pytest

from syncd.service.notify import sd_notify, watchdog, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(1)
        yield str(path), sock


def test_sd_notify_sends_the_message_to_notify_socket(notify_socket):
    path, sock = notify_socket
    sd_notify("READY=1", {"NOTIFY_SOCKET": path})
    assert sock.recv(64) == b"READY=1"


def test_sd_notify_outside_systemd_does_nothing():
    sd_notify("READY=1", {})  # no socket: no error
    sd_notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/notify"})  # a stale one: no error


def test_the_watchdog_pings_twice_per_watchdog_sec():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": ""}) is None
    assert watchdog_interval({}) is None


async def test_the_watchdog_pings_until_stopping(notify_socket):
    path, sock = notify_socket
    stopping = asyncio.Event()
    task = asyncio.create_task(watchdog(stopping, {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "60000000"}))
    await asyncio.sleep(0)  # its first ping is sent at once
    assert sock.recv(64) == b"WATCHDOG=1"
    stopping.set()
    await asyncio.wait_for(task, 1)


async def test_without_a_watchdog_there_is_nothing_to_do():
    await asyncio.wait_for(watchdog(asyncio.Event(), {}), 1)
