"""Deletions: the mass-deletion guard over a pass's confirmed deletions, the
``user.deleted`` events, and an admin's answer to held ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import structlog

from syncd import metrics
from syncd.config import SyncConfig
from syncd.model.events import event_id, event_payload, record_from_row
from syncd.model.status import EventType, TargetStatus
from syncd.store import ChangeSet, Store, TargetUpdates
from syncd.sync.plan import DeletionVerdict, guard_deletions
from syncd.sync.report import PassReport
from syncd.sync.runtime import ProviderRuntime, plan_settings
from syncd.timeutil import utcnow

log = structlog.get_logger("syncd.engine")

#: the last_error a target shows while its deletion waits for an admin, or was refused
DELETION_NOTES = {
    TargetStatus.DELETION_HELD: "deletion held by the mass-deletion guard: run `syncd deletions approve`",
    TargetStatus.DELETION_REJECTED: (
        "deletion rejected by an admin: the user stays in the mirror until it answers again"
    ),
}


class DeletionGuard:
    def __init__(self, store: Store, replica: str, sync: SyncConfig) -> None:
        self.store = store
        self.replica = replica
        self.sync = sync

    async def verdict(self, runtime: ProviderRuntime, user_ids: Sequence[str]) -> DeletionVerdict:
        """The guard's verdict (pure) on the mirror as it is now."""
        if not user_ids:
            return DeletionVerdict([], [], [], [])
        decided = await self.store.decided_deletions(runtime.name, user_ids)
        counts = await self.store.mirror_counts(runtime.name, window=runtime.config.interval)
        return guard_deletions(user_ids, decided, *counts, plan_settings(runtime, self.sync))

    async def apply(self, runtime: ProviderRuntime, user_ids: Sequence[str], report: PassReport) -> None:
        """A pass's confirmed deletions, through the guard.

        A deletion already held waits for `syncd deletions approve` (a later
        pass that confirms it again must not carry it out), one an admin
        rejected is not made while the user keeps answering 404, and deletions
        held but not yet decided count against the guard's limit: the
        schedule spreads a provider's users over many small passes, and a
        mass deletion must not slip through a few users per pass."""
        verdict = await self.verdict(runtime, user_ids)
        held = len(verdict.hold) + len(verdict.already_held)
        metrics.count_users(runtime.name, TargetStatus.DELETION_REJECTED, len(verdict.rejected))
        metrics.count_users(runtime.name, TargetStatus.DELETION_HELD, held)
        if verdict.rejected:
            await self._note(runtime.name, verdict.rejected, TargetStatus.DELETION_REJECTED)
        if verdict.already_held:
            await self._note(runtime.name, verdict.already_held, TargetStatus.DELETION_HELD)
        report.counts["held"] += held
        if verdict.mass_held:
            await self.store.hold_deletions(runtime.name, verdict.hold, run_id=report.run_id)
            await self._note(runtime.name, verdict.hold, TargetStatus.DELETION_HELD)
            log.error(
                "sync.mass_deletion_held",
                provider=runtime.name,
                would_delete=len(verdict.hold),
                already_held=len(verdict.already_held),
                max_delete_fraction=self.sync.max_delete_fraction,
                max_delete_count=self.sync.max_delete_count,
                hint=f"syncd deletions approve --provider {runtime.name}",
            )
        if verdict.delete:
            deleted = await self.delete_users(runtime, verdict.delete)
            report.counts["deleted"] += deleted
            metrics.count_users(runtime.name, TargetStatus.DELETED, deleted)

    async def _note(self, provider: str, user_ids: Sequence[str], status: TargetStatus) -> None:
        """Show on the targets that their deletion waits for an admin, or was refused."""
        await self.store.set_target_status(provider, user_ids, status, DELETION_NOTES[status])

    async def decide_held(
        self, runtime: ProviderRuntime, user_ids: Sequence[str], *, approve: bool
    ) -> tuple[int, int, int]:
        """An admin's answer to held deletions (`syncd deletions approve|reject`).

        The users are leased first: a pass that holds one of them decides it
        itself (neither may undo the other's write). Approving deletes those
        that still answer 404 (a user who came back is kept); rejecting keeps
        them in the mirror while they answer 404. Returns (deleted or
        rejected, kept because they came back, busy in a pass)."""
        provider = runtime.name
        leased = await self.store.lease_ids(provider, self.replica, self.sync.lease, user_ids)
        busy = len(user_ids) - len(leased)
        try:
            if not approve:
                await self.store.reject_deletions(provider, leased)
                await self._note(provider, leased, TargetStatus.DELETION_REJECTED)
                return len(leased), 0, busy
            still_gone = await self.store.still_not_found(provider, leased)
            deleted = await self.delete_users(runtime, still_gone)
            await self.store.clear_pending_deletions(provider, leased)
            return deleted, len(leased) - len(still_gone), busy
        finally:
            await self.store.release_leases(self.replica, provider)

    async def delete_users(self, runtime: ProviderRuntime, user_ids: Sequence[str]) -> int:
        """Write ``user.deleted`` events and mark the mirror rows deleted (only
        for targets this replica leases: see write_batch)."""
        changes = deletion_events(
            runtime, await self.store.mirror_rows(runtime.name, user_ids), self.sync, utcnow().isoformat()
        )
        if changes:
            for part, _ in changes.split(TargetUpdates.empty(), self.sync.write_batch_bytes):
                await self.store.write_batch(runtime.name, self.replica, part, TargetUpdates.empty())
            metrics.EVENTS.labels(runtime.name, EventType.DELETED).inc(len(changes))
        # a deleted user is asked for again at the slower cadence: it may come back
        await self.store.set_target_status(
            runtime.name, user_ids, TargetStatus.DELETED, None, next_in=runtime.config.deleted_recheck
        )
        return len(changes)


def deletion_events(
    runtime: ProviderRuntime, rows: dict[str, Any], sync: SyncConfig, observed: str
) -> ChangeSet:
    """The ``user.deleted`` events of these mirror rows (those not deleted yet)."""
    settings = plan_settings(runtime, sync)
    changes = ChangeSet.empty()
    for user_id, row in rows.items():
        if row["deleted_at"] is not None:
            continue
        before = record_from_row(row)
        payload = event_payload(
            settings.provider, settings.provider_type, user_id, row["source_version"], before, None, observed
        )
        eid = event_id(runtime.name, user_id, "deleted", row["content_hash"], None, row["changed_at"])
        size = len(orjson.dumps(payload["before"]))
        changes.add(user_id, eid, EventType.DELETED, payload, row["content_hash"], size=size)
    return changes
