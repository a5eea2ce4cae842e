"""``syncd.targets``: which users are synced, when next, and who leases them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import asyncpg

from syncd.store.database import Database


class LeasedElsewhere(NamedTuple):
    """Targets whose unexpired lease another replica holds."""

    targets: int
    #: when the last of those leases ends
    until: datetime | None
    #: seconds until then, by the database's clock
    seconds_left: float
    owners: list[str]


def _ids(user_ids: Sequence[str] | None) -> list[str] | None:
    """A list for a ``text[]`` parameter; None (or empty) = no restriction."""
    return list(user_ids) if user_ids else None


class Targets(Database):
    async def add_targets(self, provider: str, user_ids: Sequence[str]) -> None:
        """Add targets (due now); existing ones are left as they are."""
        ids = list(user_ids)
        for start in range(0, len(ids), 10_000):
            await self._execute("add_targets", provider, ids[start : start + 10_000])

    async def remove_targets(self, provider: str, user_ids: Sequence[str]) -> int:
        return await self._count("remove_targets", provider, list(user_ids))

    async def make_due(self, provider: str, user_ids: Sequence[str] | None) -> int:
        """Ask for a sync now (None: every target of the provider)."""
        return await self._count("make_due", provider, list(user_ids) if user_ids is not None else None)

    async def count_targets(self, provider: str) -> int:
        row = await self._fetchrow("count_targets", provider)
        return int(row["n"]) if row else 0

    async def list_targets(self, provider: str | None, *, limit: int) -> list[asyncpg.Record]:
        return await self._fetch("list_targets", provider, limit)

    async def count_listed_targets(self, provider: str | None) -> int:
        """How many targets ``list_targets`` has to show (of one provider, or all)."""
        row = await self._fetchrow("count_listed_targets", provider)
        return int(row["n"]) if row else 0

    async def target_statuses(self, provider: str, user_ids: Sequence[str]) -> dict[str, asyncpg.Record]:
        """Those of ``user_ids`` that are targets: user id → (last_status, last_error)."""
        rows = await self._fetch("target_statuses", provider, list(user_ids))
        return {r["user_id"]: r for r in rows}

    async def anything_due(self, provider: str) -> bool:
        """Is any target due and not leased? (cheap, before starting a pass)"""
        return await self._fetchrow("peek_due", provider) is not None

    async def lease_due(
        self, provider: str, owner: str, lease_seconds: float, limit: int, only: Sequence[str] | None = None
    ) -> list[asyncpg.Record]:
        """Lease up to ``limit`` due targets, with what planning them needs."""
        return await self._fetch("lease_due", provider, owner, lease_seconds, limit, _ids(only))

    async def peek_targets(
        self, provider: str, *, only: Sequence[str] | None, limit: int, after: str
    ) -> list[asyncpg.Record]:
        """Targets (or the given ids) after ``after``, as ``lease_due`` returns
        them, without leasing: the dry run's pages."""
        return await self._fetch("peek_targets", provider, _ids(only), limit, after)

    async def lease_listed(
        self, provider: str, owner: str, lease_seconds: float, user_ids: Sequence[str]
    ) -> list[asyncpg.Record]:
        """Lease the listed users that are targets and that no pass holds (due
        or not), with ``lease_due``'s columns and ``mirror_updated_at``."""
        return await self._fetch("lease_listed", provider, owner, lease_seconds, list(user_ids))

    async def release_ids(self, provider: str, owner: str, user_ids: Sequence[str]) -> None:
        """Give these leases of ours back without syncing the users."""
        await self._execute("release_ids", provider, owner, list(user_ids))

    async def lease_ids(
        self, provider: str, owner: str, lease_seconds: float, user_ids: Sequence[str]
    ) -> list[str]:
        """Lease these targets unless a pass holds them; returns the ones leased."""
        rows = await self._fetch("lease_ids", provider, owner, lease_seconds, list(user_ids))
        return [r["user_id"] for r in rows]

    async def renew_leases(
        self, owner: str, provider: str, *, lease_seconds: float, run_id: int | None
    ) -> None:
        """Extend this pass's leases and stamp its run's heartbeat."""
        await self._execute("renew_leases", owner, provider, lease_seconds, run_id)

    async def release_leases(self, owner: str, provider: str | None = None) -> None:
        await self._execute("release_leases", owner, provider)

    async def set_target_status(
        self,
        provider: str,
        user_ids: Sequence[str],
        status: str,
        error: str | None,
        *,
        next_in: float | None = None,
    ) -> None:
        """Note a status on these targets; ``next_in``: due again in about that many seconds."""
        await self._execute("set_target_status", provider, list(user_ids), status, error, next_in)

    async def cap_schedules(self, provider: str, *, interval: float, deleted_recheck: float) -> int:
        """Targets scheduled later than their cadence allows, brought in; how many."""
        return await self._count("cap_schedules", provider, interval, deleted_recheck)

    async def forget_deleted(self, provider: str, older_than: float) -> list[str]:
        """Drop the targets of users deleted more than ``older_than`` seconds ago."""
        return [r["user_id"] for r in await self._fetch("forget_deleted", provider, older_than)]

    async def leased_elsewhere(
        self, provider: str, owner: str, only: Sequence[str] | None = None
    ) -> LeasedElsewhere:
        """Targets of ``provider`` (or only ``only``) whose unexpired lease
        someone other than ``owner`` holds."""
        row = await self._fetchrow("leased_elsewhere", provider, owner, _ids(only))
        assert row is not None
        return LeasedElsewhere(int(row["n"]), row["until"], float(row["seconds_left"]), list(row["owners"]))

    async def notify_resync(self, provider: str) -> None:
        """`resync --enqueue`: wake the running daemons' job for this provider."""
        await self._fetch("notify_resync", provider)
