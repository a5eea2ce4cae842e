"""A consistent export of the mirror with the outbox position it matches:
a new consumer loads it, then reads the events after that position."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import NamedTuple

import asyncpg

from syncd.store.database import CONNECTION_ERRORS, Database, translate

#: rows fetched per round trip while streaming an export
EXPORT_PREFETCH = 1000


class ExportPosition(NamedTuple):
    #: every event up to this seq is reflected in the export, none after it
    outbox_seq: int
    taken_at: datetime


class Export(Database):
    @asynccontextmanager
    async def export_snapshot(
        self, provider: str | None, *, include_deleted: bool = False
    ) -> AsyncIterator[tuple[ExportPosition, AsyncIterator[asyncpg.Record]]]:
        """The position and the mirror rows of one snapshot. Writers are
        held off only while the snapshot is taken (``LOCK … IN SHARE MODE``
        waits for the batches in flight, so no event below the position is
        still invisible); the rows are read in a second transaction that
        imports that snapshot, without the lock."""
        try:
            async with self.pool.acquire() as locker, self.pool.acquire() as reader:
                take = locker.transaction(isolation="repeatable_read")
                await take.start()
                try:
                    await locker.execute("LOCK TABLE syncd.outbox IN SHARE MODE")
                    row = await locker.fetchrow(self.q["export_position"])
                    assert row is not None
                    read = reader.transaction(isolation="repeatable_read", readonly=True)
                    await read.start()
                    await reader.execute(f"SET TRANSACTION SNAPSHOT '{row['snapshot']}'")
                finally:
                    await take.rollback()  # the lock goes; the reader keeps the snapshot
                try:
                    position = ExportPosition(int(row["outbox_seq"]), row["taken_at"])
                    rows = reader.cursor(
                        self.q["export_users"], provider, include_deleted, prefetch=EXPORT_PREFETCH
                    )
                    yield position, rows.__aiter__()
                finally:
                    await read.rollback()
        except CONNECTION_ERRORS as exc:
            raise translate(exc) from exc
