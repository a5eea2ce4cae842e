"""Writing a planned batch: in parts of at most ``write_batch_bytes``, and a
part PostgreSQL refuses for its content bisected down to the user at fault."""

from __future__ import annotations

from typing import Any

import structlog

from syncd import metrics
from syncd.config import SyncConfig
from syncd.errors import DocumentRefused, WriteRefused
from syncd.model.status import EventType, TargetStatus
from syncd.store import ChangeSet, Store, TargetUpdates
from syncd.sync.plan import STATUS_COUNTS, note_failure
from syncd.sync.runtime import ProviderRuntime, plan_settings

log = structlog.get_logger("syncd.engine")


class BatchWriter:
    def __init__(self, store: Store, replica: str, sync: SyncConfig) -> None:
        self.store = store
        self.replica = replica
        self.sync = sync

    async def write(
        self, runtime: ProviderRuntime, changes: ChangeSet, updates: TargetUpdates, targets: dict[str, Any]
    ) -> dict[str, str]:
        """Write a batch; returns the refused users and the count each would
        have gone under (to correct the pass's counts)."""
        refused: dict[str, str] = {}
        for part in changes.split(updates, self.sync.write_batch_bytes):
            await self._write_part(runtime, *part, targets, refused)
        for type_ in set(changes.types):
            metrics.EVENTS.labels(runtime.name, type_).inc(changes.types.count(type_))
        for status in set(updates.statuses):
            if status != TargetStatus.DELETING:  # counted once the guard decides (DeletionGuard)
                metrics.count_users(runtime.name, status, updates.statuses.count(status))
        return refused

    async def _write_part(
        self,
        runtime: ProviderRuntime,
        changes: ChangeSet,
        updates: TargetUpdates,
        targets: dict[str, Any],
        refused: dict[str, str],
    ) -> None:
        try:
            written = await self.store.write_batch(runtime.name, self.replica, changes, updates)
            if written.refreshed:
                metrics.QUIET_REWRITES.labels(runtime.name).inc(written.refreshed)
            return
        except WriteRefused as exc:
            users = updates.user_ids()
            if len(users) > 1:
                log.warning("sync.write_bisected", provider=runtime.name, users=len(users), error=str(exc))
                half = len(users) // 2
                for part in (users[:half], users[half:]):
                    await self._write_part(
                        runtime, changes.subset(part), updates.subset(part), targets, refused
                    )
                return
            user_id = users[0]
            err = DocumentRefused(f"PostgreSQL refused this user's write: {exc}", provider=runtime.name)
        log.error("user.write_refused", provider=runtime.name, user_id=user_id, error=str(err))
        kinds = dict(zip(changes.user_ids, changes.types, strict=True))
        status = updates.statuses[0] if updates.statuses else TargetStatus.ERROR
        if user_id in kinds:
            refused[user_id] = EventType(kinds[user_id]).change
        else:
            refused[user_id] = STATUS_COUNTS.get(status, "failed")
        failure = TargetUpdates.empty()
        note_failure(failure, targets[user_id], err, plan_settings(runtime, self.sync))
        await self.store.write_batch(runtime.name, self.replica, ChangeSet.empty(), failure)
