"""``syncd.sync_runs``: one row per pass, its heartbeat and its counts."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from syncd.store.database import Database

#: a pass's counts, in sync_runs' column order
RUN_COUNTS = (
    "fetched",
    "created",
    "updated",
    "deleted",
    "restored",
    "unchanged",
    "failed",
    "not_found",
    "held",
)


class Runs(Database):
    async def start_run(self, provider: str, trigger: str, replica: str, lease_seconds: float) -> int:
        """A running pass's row; it is abandoned unless its heartbeat moves on."""
        row = await self._fetchrow("start_run", provider, trigger, replica, lease_seconds)
        assert row is not None
        return int(row["id"])

    async def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        counts: Mapping[str, int],
        error: str | None,
        read_mode: str | None = None,
        requests: int | None = None,
    ) -> None:
        """The pass's outcome; ``requests`` it sent, reading users ``read_mode``."""
        values = (counts.get(k, 0) for k in RUN_COUNTS)
        await self._execute("finish_run", run_id, status, *values, error, read_mode, requests)

    async def abandon_runs(self, provider: str) -> list[asyncpg.Record]:
        """Mark abandoned the provider's passes whose replica died; returns them
        (id, replica, started_at, heartbeat_at)."""
        return await self._fetch("abandon_runs", provider)

    async def recent_runs(self, limit: int) -> list[asyncpg.Record]:
        return await self._fetch("recent_runs", limit)

    async def prune_runs(self, older_than: float) -> int:
        """Delete finished runs older than ``older_than`` seconds; returns how many."""
        return await self._count("prune_runs", older_than)
