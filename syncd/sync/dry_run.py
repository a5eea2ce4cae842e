"""``resync --dry-run``: the pass's own fetch and ``plan`` over the targets,
and the guard's verdict on its deletions, with nothing written. It calls the
very functions the pass calls, so the preview cannot disagree with it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from syncd.model.diff import patch
from syncd.model.events import event_patch, record_from_row
from syncd.model.status import EventType, TargetStatus
from syncd.sync.fetch import fetch_batch
from syncd.sync.plan import BatchPlan, Outcome
from syncd.sync.report import PassReport
from syncd.sync.runner import PassServices, plan_outcomes
from syncd.sync.runtime import ProviderRuntime

_FAILED = (TargetStatus.ERROR, TargetStatus.REFUSED, TargetStatus.QUARANTINED)


async def dry_run(
    services: PassServices,
    runtime: ProviderRuntime,
    *,
    only: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> PassReport:
    """Fetch and plan every target (or only ``only``), write nothing."""
    store, sync = services.store, services.sync
    runtime.pause_checked = False
    await services.pauses.refresh(runtime)  # another replica's Retry-After holds for a dry run too
    report = PassReport(runtime.name, "dry-run")
    deletions: list[str] = []
    after = ""
    while targets := await store.peek_targets(runtime.name, only=only, limit=sync.batch_size, after=after):
        after = targets[-1]["user_id"]
        outcomes = await fetch_batch(runtime, targets)
        plan = await plan_outcomes(store, runtime, sync, outcomes)
        report.add(plan.counts)
        report.diffs += _diffs(plan, outcomes)
        deletions += [user_id for _, user_id in plan.deletions]
        if progress is not None:
            progress(len(targets))
    verdict = await services.deletions.verdict(runtime, deletions)
    report.counts["held"] += len(verdict.hold) + len(verdict.already_held)
    report.counts["deleted"] += len(verdict.delete)
    rows = await store.mirror_rows(runtime.name, verdict.delete)
    for user_id in verdict.delete:
        ops = patch(record_from_row(rows[user_id]), None) if user_id in rows else []
        report.diffs.append((user_id, "deleted", ops))
    for user_id in verdict.hold + verdict.already_held:
        report.diffs.append((user_id, "deletion held by the mass-deletion guard", []))
    return report


def _diffs(plan: BatchPlan, outcomes: Sequence[Outcome]) -> list[tuple[str, str, list[dict]]]:
    """What the plan of one batch would write: each event's patch, each failure."""
    records = {o.target["user_id"]: o.record or b"" for o in outcomes}
    out: list[tuple[str, str, list[dict]]] = []
    for user_id, _, type_, payload, _ in plan.changes.rows:
        out.append((user_id, EventType(type_).change, event_patch(payload, records[user_id])))
    for user_id, status, error, *_ in plan.targets.rows:
        if status in _FAILED:
            out.append((user_id, f"error: {error}", []))
        elif status == TargetStatus.NOT_FOUND_UNCONFIRMED:
            out.append((user_id, "not found (deletion not confirmed yet)", []))
    return out
