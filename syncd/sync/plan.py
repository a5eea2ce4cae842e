"""What one batch of a sync pass changes, decided with no I/O.

Given the leased targets' fetch outcomes, the mirror rows of the users whose
content differs, the settings and the clock, ``plan_batch`` returns the
events to write, each target's bookkeeping, the deletions the pass has
confirmed, and the counts. ``guard_deletions`` decides which confirmed
deletions the mass-deletion guard lets through. The pass (``Engine.sync``)
and its preview (``Engine.dry_run``) both call these, so a dry run cannot
disagree with the pass it previews.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import structlog

from syncd.errors import CircuitOpen, DocumentRefused, NotFound, ProviderError
from syncd.http.retry import RetryPolicy
from syncd.model.diff import same_but_for
from syncd.model.events import event_id, event_payload, record_from_row
from syncd.model.status import EventType, TargetStatus
from syncd.store import RUN_COUNTS, ChangeSet, TargetUpdates

log = structlog.get_logger("syncd.sync")

#: a leased row of syncd.targets (an asyncpg Record; a dict in unit tests)
TargetRow = Mapping[str, Any]

#: the pass count a target row's status was counted under
STATUS_COUNTS: dict[str, str] = {
    TargetStatus.UNCHANGED: "unchanged",
    TargetStatus.NOT_FOUND: "not_found",
    TargetStatus.NOT_FOUND_UNCONFIRMED: "not_found",
    TargetStatus.DELETING: "not_found",
}

#: a pass's counts: the run's (``sync_runs``' columns), and of its not-found
#: users, those deleted already (asked again at ``deleted_recheck``): they
#: answer 404 as expected, nothing for an admin to look at
PASS_COUNTS = (*RUN_COUNTS, "still_deleted")

#: a failing target's retry doubles this often at most (64 x error_retry)
FAILURE_DOUBLINGS = 6

#: target statuses of a user whose document was refused (too large, too deep,
#: refused by PostgreSQL); after quarantine_after of them in a row: quarantined
REFUSED = frozenset({TargetStatus.REFUSED, TargetStatus.QUARANTINED})


@dataclass
class Outcome:
    """What one fetch gave, for one target. A fetched user is kept as its
    record's canonical JSON and hash, not as the parsed document: a batch
    in flight holds a thousand of them."""

    target: TargetRow
    record: bytes | None = None
    content_hash: str | None = None
    version: str | None = None
    error: ProviderError | None = None
    #: the provider answered the same bytes as last time
    same_body: bool = False
    body_hash: str | None = None
    #: the provider answered 304 Not Modified to the ETag we hold (RFC 7644 §3.14)
    not_modified: bool = False
    #: the ETag to keep for the next read (checked: ``http.etag``); None clears it
    etag: str | None = None

    @property
    def unchanged_answer(self) -> bool:
        """The provider answered, and said the user is as we hold it."""
        return self.same_body or self.not_modified


@dataclass(frozen=True, kw_only=True)
class PlanSettings:
    """Everything ``plan_batch`` and ``guard_deletions`` read from the config."""

    provider: str
    provider_type: str
    #: record paths whose difference alone gives no event (``ProviderRuntime.quiet``)
    quiet: tuple[str, ...] = ()
    interval: float = 900.0
    #: a deleted user's cadence (``deleted_recheck``)
    deleted_recheck: float = 86400.0
    error_retry: float = 60.0
    circuit_cooldown: float = 30.0
    delete_confirmations: int = 2
    delete_confirm_after: float = 60.0
    quarantine_after: int = 3
    max_delete_fraction: float = 0.1
    max_delete_count: int | None = None
    #: what the ETags kept now are kept under (``ProviderRuntime.etag_scope``)
    etag_scope: str = ""

    @property
    def failure_retry(self) -> RetryPolicy:
        """When a failed target is tried again: ``error_retry`` doubling with
        each failure in a row, up to 64 times it and never past the interval
        (the ceiling; ``spread`` jitters it ±10 %, not down to 0: a failing
        provider must not be asked again at once)."""
        cap = min(self.interval, self.error_retry * 2**FAILURE_DOUBLINGS)
        return RetryPolicy(backoff_base=self.error_retry, backoff_cap=cap)


@dataclass
class BatchPlan:
    """What a batch writes and what it leaves to the rest of the pass."""

    changes: ChangeSet = field(default_factory=ChangeSet.empty)
    targets: TargetUpdates = field(default_factory=TargetUpdates.empty)
    #: confirmed deletions: (target, user id), for the mass-deletion guard
    deletions: list[tuple[TargetRow, str]] = field(default_factory=list)
    #: users answering again after 404s (a held or rejected deletion is moot)
    came_back: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PASS_COUNTS, 0))


def mirrored(target: TargetRow) -> bool:
    """The target has a live mirror row (a read can find it unchanged)."""
    return target["content_hash"] is not None and target["deleted_at"] is None


def jitter(seconds: float) -> float:
    """Spread the next sync ±10% so a provider's users don't all come due at once."""
    return seconds * random.uniform(0.9, 1.1)


def rows_needed(outcomes: Sequence[Outcome]) -> list[str]:
    """The users whose mirror row ``plan_batch`` needs: fetched, with a hash
    that differs from a live mirror row's (a creation needs none)."""
    return [
        outcome.target["user_id"]
        for outcome in outcomes
        if outcome.record is not None
        and outcome.target["content_hash"] is not None
        and (
            outcome.target["content_hash"] != outcome.content_hash or outcome.target["deleted_at"] is not None
        )
    ]


def plan_batch(
    outcomes: Sequence[Outcome],
    rows: Mapping[str, Mapping[str, Any]],
    settings: PlanSettings,
    now: datetime,
    *,
    spread: Callable[[float], float] = jitter,
) -> BatchPlan:
    """The changes, target bookkeeping, confirmed deletions and counts of one
    batch. ``rows`` are the mirror rows of ``rows_needed(outcomes)``."""
    plan = BatchPlan()
    counts, updates = plan.counts, plan.targets
    observed = now.isoformat()
    for outcome in outcomes:
        target = outcome.target
        uid = target["user_id"]
        if (outcome.unchanged_answer or outcome.record is not None) and target["not_found_count"]:
            plan.came_back.append(uid)
        etag = _etag(outcome, settings)
        if outcome.unchanged_answer:
            # a 304 leaves the mirror row, its raw document and the body's
            # fingerprint as they are; only the schedule moves on
            counts["fetched"] += 1
            counts["unchanged"] += 1
            updates.add(
                uid,
                TargetStatus.UNCHANGED,
                next_in=spread(settings.interval),
                body_hash=outcome.body_hash,
                etag=etag,
            )
        elif outcome.record is not None:
            counts["fetched"] += 1
            if target["content_hash"] == outcome.content_hash and target["deleted_at"] is None:
                counts["unchanged"] += 1
                updates.add(
                    uid,
                    TargetStatus.UNCHANGED,
                    next_in=spread(settings.interval),
                    body_hash=outcome.body_hash,
                    etag=etag,
                )
            else:
                _plan_change(plan, outcome, rows.get(uid), settings, observed, spread, etag)
        elif isinstance(outcome.error, NotFound):
            _plan_not_found(plan, target, settings, now, spread)
        else:
            counts["failed"] += 1
            err = outcome.error or ProviderError("no outcome", provider=settings.provider)
            note_failure(updates, target, err, settings, spread)
    return plan


def _plan_change(
    plan: BatchPlan,
    outcome: Outcome,
    row: Mapping[str, Any] | None,
    settings: PlanSettings,
    observed: str,
    spread: Callable[[float], float],
    etag: tuple[str, str] | None,
) -> None:
    target = outcome.target
    uid = target["user_id"]
    kind = change_kind(target["content_hash"], target["deleted_at"])
    try:
        event = change_event(settings, target, outcome, kind, row, observed)
    except Exception as exc:  # a document jsonpatch or orjson chokes on
        plan.counts["failed"] += 1
        err = DocumentRefused(
            f"could not build the change event: {exc.__class__.__name__}: {exc}", provider=settings.provider
        )
        log.warning("user.document_refused", provider=settings.provider, user_id=uid, error=str(err))
        note_failure(plan.targets, target, err, settings, spread)
        return
    new_hash = outcome.content_hash or ""
    if event is None:
        # only ignored or representation fields changed (a new meta.location,
        # a change marker): the mirror row is rewritten, quietly, so its raw
        # document never goes stale; no event
        plan.changes.refresh(uid, outcome.record or b"", new_hash, target["content_hash"])
        plan.counts["unchanged"] += 1
        plan.targets.add(
            uid,
            TargetStatus.UNCHANGED,
            next_in=spread(settings.interval),
            body_hash=outcome.body_hash,
            etag=etag,
        )
        return
    kind, eid, payload = event
    # an update's event holds before, after and the patch
    size = len(outcome.record or b"") * (1 if kind == "created" else 3)
    plan.changes.add(uid, eid, EventType.of(kind), payload, new_hash, size=size)
    plan.targets.add(uid, kind, next_in=spread(settings.interval), body_hash=outcome.body_hash, etag=etag)
    plan.counts[kind] += 1


def _etag(outcome: Outcome, settings: PlanSettings) -> tuple[str, str] | None:
    """The ETag to keep and the scope it is kept under: the answer's (a 200
    without one clears it: the next read is a plain GET), or, after a 304,
    the one that was sent."""
    return (outcome.etag, settings.etag_scope) if outcome.etag is not None else None


def _plan_not_found(
    plan: BatchPlan,
    target: TargetRow,
    settings: PlanSettings,
    now: datetime,
    spread: Callable[[float], float],
) -> None:
    """A 404 the provider itself answered: confirmed only after
    ``delete_confirmations`` of them, at least ``delete_confirm_after`` apart."""
    uid = target["user_id"]
    plan.counts["not_found"] += 1
    if target["content_hash"] is None or target["deleted_at"] is not None:
        # deleted already: asked again at the slower cadence (it may come back);
        # never mirrored (an id added before its user exists): at the interval
        cadence = settings.deleted_recheck if target["deleted_at"] is not None else settings.interval
        if target["deleted_at"] is not None:
            plan.counts["still_deleted"] += 1
        plan.targets.add(uid, TargetStatus.NOT_FOUND, next_in=spread(cadence))
        return
    not_found_count = target["not_found_count"] + 1
    not_found_since = target["not_found_since"] or now
    confirmed = not_found_count >= settings.delete_confirmations and (
        settings.delete_confirmations == 1
        or (now - not_found_since).total_seconds() >= settings.delete_confirm_after
    )
    if confirmed:
        plan.deletions.append((target, uid))
        status, next_in = TargetStatus.DELETING, spread(settings.interval)
    else:
        status, next_in = (
            TargetStatus.NOT_FOUND_UNCONFIRMED,
            min(settings.delete_confirm_after, settings.interval),
        )
    plan.targets.add(
        uid,
        status,
        next_in=next_in,
        not_found_count=not_found_count,
        not_found_since=not_found_since,
        error="provider answered 404",
    )


def note_failure(
    updates: TargetUpdates,
    target: TargetRow,
    err: ProviderError,
    settings: PlanSettings,
    spread: Callable[[float], float] = jitter,
) -> None:
    """A target that failed: retried with backoff, or, when its document
    keeps being refused, quarantined (retried only at the interval, and
    listed by `syncd status`) so it costs nothing but its own slot."""
    uid = target["user_id"]
    attempts = target["attempts"] + 1
    last = target.get("last_status")
    backoff = settings.failure_retry.ceiling(target["attempts"])
    if isinstance(err, DocumentRefused):
        # quarantined once refused again and again: the failures before this
        # one must be refusals too (an outage's errors don't count)
        status, retry = TargetStatus.REFUSED, backoff
        if attempts >= settings.quarantine_after and (settings.quarantine_after == 1 or last in REFUSED):
            status, retry = TargetStatus.QUARANTINED, settings.interval
            if last != TargetStatus.QUARANTINED:
                log.error(
                    "user.quarantined",
                    provider=settings.provider,
                    user_id=uid,
                    attempts=attempts,
                    error=str(err),
                )
    else:
        status, retry = TargetStatus.ERROR, backoff
        if isinstance(err, CircuitOpen):
            retry = min(retry, settings.circuit_cooldown)
    updates.add(
        uid,
        status,
        next_in=spread(retry),
        error=str(err)[:1000],
        failed=True,
        not_found_count=target["not_found_count"],
        not_found_since=target["not_found_since"],
    )


@dataclass(frozen=True)
class DeletionVerdict:
    """The mass-deletion guard's answer for a pass's confirmed deletions."""

    delete: list[str]
    #: held now (too many) or still waiting for an admin's approval
    hold: list[str]
    #: held before and still undecided (a later pass must not carry them out)
    already_held: list[str]
    #: an admin refused them: kept while the user answers 404
    rejected: list[str]
    #: True when the guard held this pass's new deletions (too many)
    mass_held: bool = False


def guard_deletions(
    ids: Sequence[str],
    decided: dict[str, bool],
    live: int,
    recently_deleted: int,
    pending: int,
    settings: PlanSettings,
) -> DeletionVerdict:
    """``decided`` maps a user with a held deletion to whether an admin
    rejected it. Held but undecided deletions count against the limit: the
    schedule spreads a provider's users over many small passes, and a mass
    deletion must not slip through a few users per pass."""
    rejected = [u for u in ids if decided.get(u) is True]
    already_held = [u for u in ids if decided.get(u) is False]
    new = [u for u in ids if u not in decided]
    total = live + recently_deleted
    would_delete = recently_deleted + pending + len(new)
    too_many = bool(new) and (
        would_delete > settings.max_delete_fraction * total
        or (settings.max_delete_count is not None and would_delete > settings.max_delete_count)
    )
    if too_many:
        return DeletionVerdict([], new, already_held, rejected, mass_held=True)
    return DeletionVerdict(new, [], already_held, rejected)


def change_kind(content_hash: str | None, deleted_at: datetime | None) -> str:
    """What a differing fetch means, given the user's mirror row."""
    if content_hash is None:
        return "created"
    return "restored" if deleted_at is not None else "updated"


def change_event(
    settings: PlanSettings,
    target: TargetRow,
    outcome: Outcome,
    kind: str,
    row: Mapping[str, Any] | None,
    observed: str,
) -> tuple[str, str, dict[str, Any]] | None:
    """``(kind, event id, payload)`` of a fetched user whose hash differs from
    its mirror row's, or None when only quiet fields (ignored, representation)
    differ."""
    uid, record, new_hash = target["user_id"], outcome.record or b"", outcome.content_hash or ""
    if row is None:
        # a creation carries the record's bytes as they are, and its patch
        # is built by the store (see write_batch in queries.sql); so is a
        # mirror row that vanished since the lease
        kind = "created"
        payload = event_payload(
            settings.provider,
            settings.provider_type,
            uid,
            outcome.version,
            None,
            orjson.Fragment(record),
            observed,
        )
    else:
        after = orjson.loads(record)
        before = record_from_row(row)
        if kind == "updated" and same_but_for(before, after, settings.quiet):
            return None
        payload = event_payload(
            settings.provider, settings.provider_type, uid, outcome.version, before, after, observed
        )
    # what tells this change apart from an identical earlier one: for an update
    # or restore the mirror row's changed_at; for a creation (also of a mirror
    # row that vanished) when the target was last synced, or, never synced,
    # when it was added (a target removed and added again is a new one)
    created_marker = target["last_synced_at"] or target.get("added_at")
    marker = created_marker if kind == "created" else target["changed_at"]
    return kind, event_id(settings.provider, uid, kind, target["content_hash"], new_hash, marker), payload
