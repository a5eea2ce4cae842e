"""``syncd.pending_deletions``: deletions the mass-deletion guard holds, and
the counts it decides on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import asyncpg

from syncd.store.database import Database


class MirrorCounts(NamedTuple):
    """What the mass-deletion guard weighs a pass's deletions against."""

    live: int
    recently_deleted: int
    #: deletions held for approval, not yet decided
    held: int


class Deletions(Database):
    async def mirror_counts(self, provider: str, *, window: float) -> MirrorCounts:
        """Mirrored users, those deleted within ``window`` seconds, deletions held."""
        row = await self._fetchrow("live_count", provider, window)
        if row is None:
            return MirrorCounts(0, 0, 0)
        return MirrorCounts(row["live"], row["recently_deleted"], row["held"])

    async def hold_deletions(self, provider: str, user_ids: Sequence[str], *, run_id: int | None) -> None:
        await self._execute("hold_deletions", provider, list(user_ids), run_id)

    async def pending_deletions(self, provider: str) -> list[asyncpg.Record]:
        """Held deletions not yet decided: (user_id, detected_at)."""
        return await self._fetch("pending_deletions", provider)

    async def decided_deletions(self, provider: str, user_ids: Sequence[str]) -> dict[str, bool]:
        """Of these users, those with a deletion held (False) or rejected (True)."""
        rows = await self._fetch("decided_deletions", provider, list(user_ids))
        return {r["user_id"]: r["rejected"] for r in rows}

    async def reject_deletions(self, provider: str, user_ids: Sequence[str]) -> None:
        """Remembered until the user answers again."""
        await self._execute("reject_deletions", provider, list(user_ids))

    async def clear_pending_deletions(self, provider: str, user_ids: Sequence[str]) -> None:
        """Approved, or the user answers again: forget the held or rejected deletion."""
        await self._execute("clear_pending_deletions", provider, list(user_ids))

    async def still_not_found(self, provider: str, user_ids: Sequence[str]) -> list[str]:
        """Of these held deletions, the users that still answer 404."""
        return [r["user_id"] for r in await self._fetch("still_not_found", provider, list(user_ids))]
