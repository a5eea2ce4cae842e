"""Refreshing the mirror from a discovery listing's pages.

A ZITADEL v2 or SCIM listing returns each user in the representation of the
by-id read, so a discovery is also a refresh of every listed user that is a
target already, with no second request per user. A page is evidence about
the users it holds, nothing more: it never deletes (a user it leaves out is
discovery's to make due for a by-id read), it never enrols (a complete
listing does that, and a new user is read like any other), and a document
older than the mirror's (ZITADEL serves its listing from a projection that
can lag a write) leaves the user as it is.

Each page's listed targets are leased like a pass's batch, so a pass and a
page never work on the same user at once, and written through the pass's
own planner and writer (``runner.write_outcomes``): the same events, hashes
and bookkeeping as a read by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from syncd import metrics
from syncd.model.listing import Page, PageRefreshed
from syncd.sync.batch_read import document_fingerprint, older_than_mirror
from syncd.sync.fetch import mapped_outcome
from syncd.sync.plan import Outcome, mirrored
from syncd.sync.runner import PassServices, write_outcomes
from syncd.sync.runtime import ProviderRuntime

log = structlog.get_logger("syncd.sync")

#: the changes a page refresh counts as such (an event each)
CHANGES = ("created", "updated", "restored")


@dataclass(frozen=True, slots=True)
class _Listed:
    """What one listed target's document gave: an outcome to write, or
    (``outcome`` None) a reason to leave the user to its scheduled read."""

    outcome: Outcome | None
    skipped: str | None = None


class PageRefresh:
    """Called with each page of a listing (``Discoverer``'s ``on_page``)."""

    def __init__(self, services: PassServices, runtime: ProviderRuntime) -> None:
        self.services = services
        self.runtime = runtime

    async def __call__(self, page: Page) -> PageRefreshed:
        if not page.documents or len(page.documents) != len(page.ids):
            return PageRefreshed()
        services, runtime = self.services, self.runtime
        rows = await services.store.lease_listed(
            runtime.name, services.replica, services.sync.lease, page.ids
        )
        if not rows:
            return PageRefreshed()
        documents = dict(zip(page.ids, page.documents, strict=True))
        listed = [(row, _listed(runtime, row, documents[row["user_id"]])) for row in rows]
        batch = [row for row, one in listed if one.outcome is not None]
        outcomes = [one.outcome for _, one in listed if one.outcome is not None]
        skipped = [row["user_id"] for row, one in listed if one.outcome is None]
        try:
            plan = await write_outcomes(services, runtime, batch, outcomes) if batch else None
        finally:
            if skipped:
                await services.store.release_ids(runtime.name, services.replica, skipped)
        if skipped:
            reasons = sorted({one.skipped for _, one in listed if one.skipped})
            log.info("discovery.page_users_left", provider=runtime.name, users=len(skipped), reasons=reasons)
        if plan is None:
            return PageRefreshed()
        counts = plan.counts
        changed = sum(counts[kind] for kind in CHANGES)
        metrics.PAGE_REFRESHED.labels(runtime.name).inc(counts["fetched"])
        return PageRefreshed(refreshed=counts["fetched"] - counts["failed"], changed=changed)


def _listed(runtime: ProviderRuntime, row: Any, doc: Any) -> _Listed:
    """One listed target's outcome, as a read by id would give it: the same
    document as its last read (not mapped again), its record, or its error."""
    fingerprint = document_fingerprint(runtime.salt, doc)
    if fingerprint and mirrored(row) and row["body_hash"] == fingerprint:
        return _Listed(Outcome(row, same_body=True, body_hash=fingerprint))
    try:
        identity = runtime.connection.adapter.normalize(doc)
    except Exception as exc:  # its by-id read will give that user's error
        log.info(
            "discovery.page_document_unmapped", provider=runtime.name, user_id=row["user_id"], error=str(exc)
        )
        return _Listed(None, "a document that does not map")
    if older_than_mirror(identity, row):
        return _Listed(None, "a document older than the mirror's (a lagging listing)")
    return _Listed(mapped_outcome(runtime, row, identity, fingerprint or None))


def refreshes_from_pages(runtime: ProviderRuntime) -> bool:
    """Whether a discovery of this provider refreshes its users from the
    pages: not when it is told to read each user by id."""
    return runtime.config.refresh != "by_id"
