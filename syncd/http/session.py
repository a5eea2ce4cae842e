"""One keep-alive aiohttp session per provider."""

from __future__ import annotations

import aiohttp

from syncd import jsonutil


def make_session(concurrency: int, connect_timeout: float, read_timeout: float) -> aiohttp.ClientSession:
    """One keep-alive session per provider, its pool matched to concurrency."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        # identity APIs authenticate by header: no cookie handling on every response
        cookie_jar=aiohttp.DummyCookieJar(),
        json_serialize=jsonutil.dumps,
        headers={"Accept": "application/json", "User-Agent": "syncd"},
    )


def default_deadline(session: aiohttp.ClientSession) -> float:
    """Room for a connect and a couple of slow reads, never under a minute."""
    timeout = session.timeout
    return max(60.0, 2 * ((timeout.sock_connect or 0.0) + (timeout.sock_read or 0.0)))
