"""How a provider's users are read: many by id per request where its API
allows (ZITADEL's ListUsers ``inUserIdsQuery``, SCIM's ``id eq … or …``),
else one request each. ``refresh`` chooses; the server's answers can switch
batching off for good (``disable_batching``), and by-id reads go on."""

from __future__ import annotations

import structlog

from syncd import metrics
from syncd.errors import ProviderError
from syncd.providers.base import BatchReader, Lister
from syncd.providers.listing import settings_document
from syncd.sync.runtime import ProviderRuntime, ReadMode

log = structlog.get_logger("syncd.sync")


async def decide_reads(runtime: ProviderRuntime) -> ReadMode:
    """The provider's read mode, decided once (a server's settings that can't
    be read now are asked for again at the next pass)."""
    reads = runtime.reads
    if reads.decided:
        return reads
    config, adapter = runtime.config, runtime.connection.adapter
    if config.refresh == "by_id":
        reads.decided = True
    elif not isinstance(adapter, BatchReader):
        _one_by_one(runtime, f"the {config.type} API has no batch read by id")  # type: ignore[attr-defined]
    else:
        try:
            settings = (
                await settings_document(adapter, runtime.client) if isinstance(adapter, Lister) else None
            )
        except ProviderError as exc:
            log.warning("reads.settings_unreadable", provider=runtime.name, error=str(exc))
            return reads  # one by one for this pass; decided at the next
        limit = adapter.batch_limit(settings)
        if limit < 2:
            _one_by_one(
                runtime, "the server cannot filter by id (ServiceProviderConfig: filter not supported)"
            )
        else:
            reads.batch_size, reads.decided = min(config.batch_size_read, limit), True
    metrics.BATCH_READS.labels(runtime.name).set(1 if reads.batch_size else 0)
    log.info(
        "reads.mode", provider=runtime.name, mode=reads.name, batch_size=reads.batch_size, reason=reads.reason
    )
    return reads


def _one_by_one(runtime: ProviderRuntime, reason: str) -> None:
    reads = runtime.reads
    reads.batch_size, reads.decided, reads.reason = 0, True, reason
    if runtime.config.refresh == "batch":
        log.warning("reads.batch_unavailable", provider=runtime.name, reason=reason)


def disable_batching(runtime: ProviderRuntime, reason: str) -> None:
    """A batch answer that can't be trusted: read one by one from now on."""
    reads = runtime.reads
    if not reads.batch_size:
        return
    reads.batch_size, reads.reason = 0, reason
    metrics.BATCH_READS.labels(runtime.name).set(0)
    log.warning("reads.batching_disabled", provider=runtime.name, reason=reason)
