"""The outbox's retention, applied by the daemon itself (``[outbox]
retention``): events older than it, and finished sync runs, are deleted.
Claim consumers mark what they took, so only processed events go; a stream
consumer (Debezium, any logical-replication reader) marks nothing, so its
events are pruned by age alone — it has read them from the WAL long before."""

from __future__ import annotations

import structlog

from syncd.config import OutboxConfig
from syncd.store import Store

log = structlog.get_logger("syncd.daemon")

#: the longest wait between two prunes
MAX_EVERY = 3600.0


def prune_every(outbox: OutboxConfig) -> float | None:
    """Seconds between prunes: a tenth of the retention, at most an hour
    (None: no retention configured)."""
    if outbox.retention is None:
        return None
    return max(1.0, min(outbox.retention / 10, MAX_EVERY))


async def apply_retention(store: Store, outbox: OutboxConfig) -> tuple[int, int]:
    """Prune once; (events, sync runs) deleted."""
    assert outbox.retention is not None
    events = await store.prune_outbox(outbox.retention, include_unprocessed=outbox.consumer == "stream")
    runs = await store.prune_runs(outbox.retention)
    if events or runs:
        log.info(
            "outbox.pruned",
            events=events,
            runs=runs,
            retention=outbox.retention,
            consumer=outbox.consumer,
        )
    return events, runs
