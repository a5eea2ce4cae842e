"""A provider's change feed (``refresh = "feed"``): the users it says changed
since the last walk are made due now, so the next pass reads them; the
scheduled refresh at ``interval`` still reads everyone.

A feed is a hint, never evidence: it makes users due and nothing else (no
deletion, no enrolment; a user it lists that is not a target is left alone).
The watermark is the newest change the provider itself stamped (its clock,
not ours), and each walk asks for changes after it less ``feed_overlap``: a
change stamped earlier but committed after a walk saw a later one, or one
that raced a page walk, is caught by the next walk. A filtered feed that
answers a change older than it asked for ignores its filter: the walk stops
and the watermark stays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from syncd.errors import ConfigError
from syncd.providers.base import FeedReader, Lister
from syncd.providers.listing import list_settings
from syncd.store import Store
from syncd.sync.runtime import ProviderRuntime
from syncd.timeutil import utcnow

log = structlog.get_logger("syncd.feed")

#: a walk reads at most this many pages (a feed that never ends is a server's bug)
MAX_FEED_PAGES = 1000


@dataclass(frozen=True, kw_only=True)
class FeedReport:
    provider: str
    #: changes the walk read after ``since``
    listed: int = 0
    #: targets made due by them
    made_due: int = 0
    since: datetime | None = None
    watermark: datetime | None = None
    requests: int = 0
    #: why the walk stopped short (the watermark then stays)
    problem: str | None = None


def walk_since(watermark: datetime | None, overlap: float, now: datetime) -> datetime:
    """The time a walk asks for changes after: the watermark (or, at the first
    walk, now) less the overlap."""
    return (watermark or now) - timedelta(seconds=overlap)


def next_watermark(
    watermark: datetime | None, seen: Iterable[datetime | None], now: datetime
) -> datetime | None:
    """The newest change seen, never backwards, and never past ``now`` (a
    provider stamping the future must not make the feed skip what follows)."""
    stamps = [at for at in seen if at is not None]
    newest = max([*stamps, *([watermark] if watermark else [])], default=None)
    if newest is None:
        return now  # the first walk found nothing: start the clock
    return min(newest, max(now, watermark or now))


@dataclass
class _Walk:
    listed: int = 0
    made_due: int = 0
    seen: list[datetime | None] = field(default_factory=list)
    problem: str | None = None


async def walk_feed(
    store: Store, runtime: ProviderRuntime, *, clock: Callable[[], datetime] = utcnow
) -> FeedReport:
    """One walk of the provider's feed; its changed targets are due when it returns."""
    adapter, client, name = runtime.connection.adapter, runtime.client, runtime.name
    if not isinstance(adapter, FeedReader) or not isinstance(adapter, Lister):
        raise ConfigError(f"provider {name!r}: its type has no change feed")
    watermark = await store.feed_watermark(name)
    now = clock()
    since = walk_since(watermark, runtime.config.feed_overlap, now)
    sent_before = sum(client.sent.values())
    walk = await _pages(store, runtime, adapter, since)
    new_mark = watermark if walk.problem else next_watermark(watermark, walk.seen, now)
    if new_mark is not None and not walk.problem:
        await store.advance_feed(name, new_mark, listed=walk.listed, made_due=walk.made_due)
    report = FeedReport(
        provider=name,
        listed=walk.listed,
        made_due=walk.made_due,
        since=since,
        watermark=new_mark,
        requests=sum(client.sent.values()) - sent_before,
        problem=walk.problem,
    )
    (log.warning if walk.problem else log.info)(
        "feed.walked",
        provider=name,
        since=since.isoformat(),
        watermark=new_mark.isoformat() if new_mark else None,
        listed=walk.listed,
        made_due=walk.made_due,
        requests=report.requests,
        problem=walk.problem,
    )
    return report


async def _pages(store: Store, runtime: ProviderRuntime, adapter: FeedReader, since: datetime) -> _Walk:
    """Every page of changes after ``since``, each page's targets made due as it comes."""
    client, name = runtime.client, runtime.name
    settings = await list_settings(adapter, client)  # type: ignore[arg-type]
    walk, cursor = _Walk(), None
    for _ in range(MAX_FEED_PAGES):
        request = adapter.feed_request(cursor, settings, since)
        page = adapter.feed_page(client.document(await client.send(request)), cursor, settings)
        fresh = [(uid, at) for uid, at in page.changes if at is None or at > since]
        stale = len(page.changes) - len(fresh)
        if fresh:
            walk.listed += len(fresh)
            walk.made_due += await store.make_due(name, [uid for uid, _ in fresh])
            walk.seen.extend(at for _, at in fresh)
        if stale and not adapter.feed_sorted:
            walk.problem = (
                f"the feed answered {stale} change(s) older than it asked for"
                " (the server ignores its meta.lastModified filter)"
            )
            return walk
        if page.next is None or (adapter.feed_sorted and stale):
            return walk  # the end, or (newest first) the changes before ``since``
        cursor = page.next
    walk.problem = f"the feed did not end within {MAX_FEED_PAGES} pages"
    return walk
