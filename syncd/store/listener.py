"""LISTEN on one dedicated connection, for every channel a process hears."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import asyncpg

from syncd.store.database import CONNECTION_ERRORS, Database, translate


class Listener(Database):
    @asynccontextmanager
    async def listen(
        self, callbacks: Mapping[str, Callable[[str], None]]
    ) -> AsyncIterator[asyncpg.Connection]:
        """LISTEN to each channel of ``callbacks`` (its callback gets the
        payload) on one dedicated connection while the context is open."""
        try:
            conn = await asyncpg.connect(self.dsn)
        except CONNECTION_ERRORS as exc:
            raise translate(exc) from exc

        def on_notify(_c: object, _pid: int, channel: str, payload: str) -> None:
            callbacks[channel](payload)

        try:
            for channel in callbacks:
                await conn.add_listener(channel, on_notify)
            yield conn
        finally:
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                conn.terminate()
