"""``syncd.sync.feed``'s watermark: the newest change a provider's feed walk saw."""

from __future__ import annotations

from datetime import datetime

from syncd.store.database import Database


class Feeds(Database):
    async def feed_watermark(self, provider: str) -> datetime | None:
        row = await self._fetchrow("feed_watermark", provider)
        return row["watermark"] if row else None

    async def advance_feed(self, provider: str, watermark: datetime, *, listed: int, made_due: int) -> None:
        await self._execute("advance_feed", provider, watermark, listed, made_due)
