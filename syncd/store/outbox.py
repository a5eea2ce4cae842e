"""``syncd.outbox``: claiming events for consumers, and retention."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg

from syncd.store.database import CONNECTION_ERRORS, Database, translate


class Outbox(Database):
    async def claim_events(
        self, limit: int, deliver: Callable[[Sequence[asyncpg.Record]], None], *, mark: bool = True
    ) -> int:
        """Claim the oldest unprocessed events (SKIP LOCKED: consumers share
        them) and hand them to ``deliver``, then mark them processed, in one
        transaction: if delivering fails (a broken pipe), nothing is marked.
        ``mark=False`` only peeks. Returns how many were delivered."""
        self.round_trips += 1
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(self.q["claim_outbox"], limit)
                deliver(rows)
                if mark and rows:
                    await conn.execute(self.q["mark_processed"], [r["id"] for r in rows])
                return len(rows)
        except CONNECTION_ERRORS as exc:
            raise translate(exc, self.dsn) from exc

    async def prune_outbox(self, older_than: float, *, include_unprocessed: bool) -> int:
        """Delete events older than ``older_than`` seconds (processed ones only,
        unless ``include_unprocessed``); returns how many."""
        return await self._count("prune_outbox", older_than, include_unprocessed)

    async def event_counts(self) -> list[asyncpg.Record]:
        """(type, n) over the whole outbox."""
        return await self._fetch("event_counts")

    async def sample_events(self) -> list[asyncpg.Record]:
        """One event of each non-create type per provider."""
        return await self._fetch("sample_events")

    async def recent_events(self, provider: str | None, *, limit: int) -> list[asyncpg.Record]:
        return await self._fetch("events", provider, limit)
