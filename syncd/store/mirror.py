"""``syncd.users``, the mirror, and the one statement that writes a batch
(its events, its mirror rows and its targets' bookkeeping)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import asyncpg

from syncd.errors import WriteRefused
from syncd.store.batch import ChangeSet, TargetUpdates
from syncd.store.database import CONNECTION_ERRORS, CONTENT_ERRORS, Database, translate


class Written(NamedTuple):
    """What one ``write_batch`` wrote."""

    events: int
    #: mirror rows rewritten with no event (only quiet fields differed)
    refreshed: int


class Mirror(Database):
    async def mirror_rows(self, provider: str, user_ids: Sequence[str]) -> dict[str, asyncpg.Record]:
        if not user_ids:
            return {}
        return {r["user_id"]: r for r in await self._fetch("mirror_rows", provider, list(user_ids))}

    async def mirror_sample(self, provider: str | None, *, limit: int) -> list[asyncpg.Record]:
        """The first mirror rows (by user id) of a provider, or of all."""
        return await self._fetch("mirror", provider, limit)

    async def write_batch(
        self, provider: str, owner: str, changes: ChangeSet, updates: TargetUpdates
    ) -> Written:
        """Events + mirror rows (quiet rewrites too) + target bookkeeping for
        one batch: one statement (so atomic, and one round trip); returns how
        many events and quiet rewrites went in."""
        self.round_trips += 1
        try:
            row = await self.pool.fetchrow(
                self.q["write_batch"],
                provider,
                owner,
                changes.param(),
                updates.param(),
                changes.refresh_param(),
            )
        except CONNECTION_ERRORS as exc:
            raise translate(exc, self.dsn) from exc
        except CONTENT_ERRORS as exc:
            raise WriteRefused(f"{exc.__class__.__name__}: {str(exc)[:300]}") from exc
        return Written(int(row["events"]), int(row["refreshed"])) if row else Written(0, 0)
