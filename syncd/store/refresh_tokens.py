"""``syncd.refresh_tokens``: the newest refresh token of each provider
(``syncd.http.oauth2``'s ``RefreshTokenStore``, bound by ``StoredRefreshTokens``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from syncd.store.database import CONNECTION_ERRORS, Database, translate


class RefreshTokenSlot:
    """One provider's stored refresh token, its rotation lock held."""

    def __init__(self, conn: asyncpg.Connection, q: dict[str, str], provider: str, origin: str) -> None:
        self._conn, self._q, self.provider, self.origin = conn, q, provider, origin

    async def load(self) -> str | None:
        try:
            token = await self._conn.fetchval(self._q["refresh_token"], self.provider, self.origin)
        except CONNECTION_ERRORS as exc:
            raise translate(exc) from exc
        return str(token) if token is not None else None

    async def save(self, token: str) -> None:
        try:
            await self._conn.execute(self._q["save_refresh_token"], self.provider, self.origin, token)
        except CONNECTION_ERRORS as exc:
            raise translate(exc) from exc


class RefreshTokens(Database):
    async def refresh_token(self, provider: str, origin: str) -> str | None:
        row = await self._fetchrow("refresh_token", provider, origin)
        return str(row["token"]) if row else None

    @asynccontextmanager
    async def refresh_token_rotation(self, provider: str, origin: str) -> AsyncIterator[RefreshTokenSlot]:
        """Hold ``provider``'s rotation lock (other replicas wait) for one
        refresh; a token saved in it is committed when the block ends."""
        self.round_trips += 1
        inside = False
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(self.q["lock_refresh_token"], provider)
                inside = True
                yield RefreshTokenSlot(conn, self.q, provider, origin)
                inside = False
        except CONNECTION_ERRORS as exc:
            if inside:
                raise  # the refresh's own error (its HTTP call), not the database's
            raise translate(exc) from exc
