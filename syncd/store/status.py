"""Read-only reports over several tables: `syncd status` and the gauges of /metrics."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from syncd.store.database import Database


class Status(Database):
    async def provider_status(self, providers: Sequence[str]) -> list[asyncpg.Record]:
        """Per provider (configured or seen in the tables): targets, due, errors,
        leased, quarantined, mirrored, deleted, held deletions, last sync, pause, circuit."""
        return await self._fetch("provider_status", list(providers))

    async def recent_errors(self, limit: int) -> list[asyncpg.Record]:
        return await self._fetch("recent_errors", limit)

    async def quarantined_targets(self, limit: int) -> list[asyncpg.Record]:
        return await self._fetch("quarantined_targets", limit)

    async def outbox_backlog(self) -> tuple[int, float]:
        """(events from the oldest unprocessed one to the newest, that one's
        age in seconds); (0, 0) when every event is processed."""
        row = await self._fetchrow("outbox_backlog")
        if row is None or row["first_seq"] is None:
            return 0, 0.0
        return int(row["last_seq"] - row["first_seq"] + 1), max(float(row["age"]), 0.0)

    async def gauges(self, providers: Sequence[str]) -> list[asyncpg.Record]:
        """Per provider: targets due now, deletions held."""
        return await self._fetch("gauges", list(providers))
