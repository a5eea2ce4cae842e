"""``syncd.discovery`` and the targets a listing enrols: the per-provider
listing lease, the last listing's outcome, and a complete listing's changes
written in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import asyncpg

from syncd.store.database import Database


class DiscoveryHolder(NamedTuple):
    """The replica listing a provider now, and until when its lease runs."""

    owner: str
    until: datetime


class Applied(NamedTuple):
    enrolled: int
    made_due: int


class Discovery(Database):
    async def lease_discovery(
        self, provider: str, owner: str, *, seconds: float, only_when_due: bool
    ) -> bool:
        """Take the provider's discovery lease; False when another replica
        holds it (or, with ``only_when_due``, the listing is not due yet)."""
        return await self._fetchrow("lease_discovery", provider, owner, seconds, only_when_due) is not None

    async def discovery_holder(self, provider: str) -> DiscoveryHolder | None:
        row = await self._fetchrow("discovery_holder", provider)
        return DiscoveryHolder(row["leased_by"], row["lease_expires_at"]) if row else None

    async def renew_discovery_lease(self, provider: str, owner: str, *, seconds: float) -> bool:
        """Extend our lease; False when it was lost (expired and taken)."""
        return await self._count("renew_discovery_lease", provider, owner, seconds) == 1

    async def target_sources(self, provider: str) -> dict[str, str]:
        """Every target of the provider → who made it one (``TargetSource``)."""
        return {row["user_id"]: row["source"] for row in await self._fetch("target_sources", provider)}

    async def apply_discovery(
        self,
        provider: str,
        owner: str,
        *,
        new: Sequence[str],
        missing: Sequence[str],
        listed: int,
        unchanged: int,
        next_in: float,
    ) -> Applied | None:
        """Enrol ``new`` and make ``missing`` due, while the lease is ours;
        None (nothing written) when it was lost."""
        row = await self._fetchrow(
            "apply_discovery", provider, owner, list(new), list(missing), listed, unchanged, next_in
        )
        return Applied(row["enrolled"], row["made_due"]) if row else None

    async def fail_discovery(
        self, provider: str, owner: str, *, verdict: str, reason: str, listed: int, next_in: float
    ) -> None:
        """Record a listing that changed nothing, and release the lease."""
        await self._execute("fail_discovery", provider, owner, verdict, reason[:1000], listed, next_in)

    async def make_discovery_due(self, provider: str | None) -> int:
        """Ask for the next listing now (None: every provider's)."""
        return await self._count("make_discovery_due", provider)

    async def discovery_status(self) -> list[asyncpg.Record]:
        return await self._fetch("discovery_status")
