"""Change feeds (issue #16) against the fake SCIM providers and a real
PostgreSQL: a walk makes the changed users due and the next pass reads
them; the watermark is the provider's newest stamp, kept in the database;
the overlap catches a change stamped before one already seen but committed
after it (a change made while the walk ran); Webex's newest-first feed stops
at the first old change; a server that ignores the filter is caught; a
Retry-After in a walk is obeyed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from syncd.testing.dialects.scim import touch
from tests.integration.conftest import FAST, wait_for

N = 12


#: pages of five: a walk has pages to race (the conftest's provider)
LISTING_CAP = 5


async def fed(f, store, make_config, engine_for, **over):
    """A provider with ``refresh = "feed"``, its users synced once."""
    ids = f.seed(N)
    await store.add_targets("corp", ids)
    engine = await engine_for(make_config(("corp", f), refresh="feed", **{**FAST, **over}))
    assert (await engine.sync("corp")).counts["created"] == N
    return ids, engine


def feed_requests(f) -> list:
    return [r for r in f.user_requests() if "lastModified" in r.path]


async def due(store) -> set[str]:
    rows = await store.pool.fetch(
        "SELECT user_id FROM syncd.targets WHERE provider = 'corp' AND next_sync_at <= now()"
    )
    return {r["user_id"] for r in rows}


@pytest.mark.parametrize("provider", ["scim", "webex"], indirect=True)
async def test_a_walk_makes_the_changed_users_due_and_the_next_pass_reads_them(
    provider, store, make_config, engine_for
):
    ids, engine = await fed(provider, store, make_config, engine_for)
    first = await engine.walk_feed("corp")  # no watermark yet: the clock starts
    assert first.problem is None and first.made_due == 0 and await due(store) == set()

    now = datetime.now(UTC)
    for n, uid in enumerate(ids[3:6]):
        provider.users[uid] = touch(provider.users[uid], now - timedelta(seconds=n))
    report = await engine.walk_feed("corp")
    assert report.problem is None and report.made_due == 3
    assert await due(store) == set(ids[3:6])
    assert await store.feed_watermark("corp") == now.replace(microsecond=now.microsecond // 1000 * 1000)

    synced = await engine.sync("corp")
    assert synced.counts["updated"] == 3 and synced.counts["fetched"] == 3
    assert synced.read_mode == "batch+feed"  # what `syncd status` shows as READS
    again = await engine.walk_feed("corp")  # within the overlap: hints again, harmless
    assert again.problem is None and await store.feed_watermark("corp") == report.watermark


@pytest.mark.parametrize("provider", ["scim"], indirect=True)
@pytest.mark.parametrize("overlap", ["120s", "0s"])
async def test_a_change_committed_during_a_walk_is_caught_by_the_overlap(
    provider, store, make_config, engine_for, overlap
):
    """User 1 (page 1) changes while the walk waits for page 2, stamped just
    before user 8's change (page 2), which the walk sees: the watermark is
    past user 1's stamp, so only the overlap brings user 1 back."""
    ids, engine = await fed(provider, store, make_config, engine_for, feed_overlap=overlap)
    now = datetime.now(UTC)
    await store.advance_feed("corp", now - timedelta(minutes=30), listed=0, made_due=0)
    for uid in ids:  # everyone changed once in the last half hour: the feed has pages
        provider.users[uid] = touch(provider.users[uid], now - timedelta(minutes=10))
    provider.users[ids[8]] = touch(provider.users[ids[8]], now - timedelta(seconds=20))
    provider.inject("slow", delay=0.5, only_path="startIndex=6")
    walk = asyncio.create_task(engine.walk_feed("corp"))
    await wait_for(lambda: any("startIndex=6" in r.path for r in feed_requests(provider)), timeout=5)
    provider.users[ids[1]] = touch(provider.users[ids[1]], now - timedelta(seconds=30))
    first = await walk
    assert first.problem is None and first.made_due == N

    await engine.sync("corp")  # reads everyone made due; user 1 maybe before its change
    await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now() + interval '1 hour'")
    provider.users[ids[1]] = touch(provider.users[ids[1]], now - timedelta(seconds=30), n=2)
    second = await engine.walk_feed("corp")
    assert second.problem is None
    if overlap != "0s":
        assert ids[1] in await due(store)
    else:
        assert ids[1] not in await due(store)  # missed without the overlap


@pytest.mark.parametrize("provider", ["webex"], indirect=True)
async def test_webex_newest_first_feed_stops_at_the_first_old_change(
    provider, store, make_config, engine_for
):
    ids, engine = await fed(provider, store, make_config, engine_for)
    await engine.walk_feed("corp")
    now = datetime.now(UTC)
    provider.users[ids[10]] = touch(provider.users[ids[10]], now)
    provider.users[ids[2]] = touch(provider.users[ids[2]], now - timedelta(seconds=5))
    provider.requests.clear()
    report = await engine.walk_feed("corp")
    assert report.made_due == 2 and await due(store) == {ids[10], ids[2]}
    feed = [r for r in provider.user_requests() if "sortBy" in r.path]
    assert len(feed) == 1  # the first page already reached the old changes
    assert "filter" not in feed[0].path  # Webex can't filter by meta.lastModified


@pytest.mark.parametrize("provider", ["scim"], indirect=True)
async def test_a_server_ignoring_the_feed_filter_is_caught_and_the_watermark_stays(
    provider, store, make_config, engine_for
):
    _, engine = await fed(provider, store, make_config, engine_for)
    mark = datetime.now(UTC) - timedelta(minutes=1)
    await store.advance_feed("corp", mark, listed=0, made_due=0)
    provider.listing.filter_ignored_silently = True  # answers everyone, from 2026-01
    report = await engine.walk_feed("corp")
    assert report.problem and "ignores its meta.lastModified filter" in report.problem
    assert await store.feed_watermark("corp") == mark
    assert await due(store) == set()  # the old stamps made no one due


@pytest.mark.parametrize("provider", ["scim"], indirect=True)
async def test_a_walk_waits_out_a_retry_after(provider, store, make_config, engine_for):
    ids, engine = await fed(provider, store, make_config, engine_for)
    await engine.walk_feed("corp")
    provider.users[ids[0]] = touch(provider.users[ids[0]], datetime.now(UTC))
    provider.inject("429", retry_after="1", only_path="lastModified")
    report = await engine.walk_feed("corp")
    assert report.made_due == 1
    assert provider.early_requests() == []
    assert [r.status for r in feed_requests(provider)][-2:] == [429, 200]


@pytest.mark.parametrize("provider", ["scim"], indirect=True)
async def test_the_daemon_mirrors_a_change_within_the_feed_interval(provider, store, db_url, start_daemon):
    """`interval = "1h"`: only the feed can bring the change in this soon."""
    ids = provider.seed(5)
    await store.add_targets("corp", ids)
    await start_daemon(db_url, provider.url, ptype="scim", refresh="feed", extra='feed_interval = "300ms"')

    async def display_name(uid: str) -> str | None:
        return await store.pool.fetchval("SELECT display_name FROM syncd.users WHERE user_id = $1", uid)

    await wait_for(lambda: _mirrored(store, 5), timeout=30)
    await wait_for(lambda: _watermarked(store), timeout=30)
    provider.users[ids[2]] = touch(provider.users[ids[2]], datetime.now(UTC), n=7)
    wanted = provider.users[ids[2]]["displayName"]
    await wait_for(lambda: _is(display_name(ids[2]), wanted), timeout=30)


async def _mirrored(store, n: int) -> bool:
    return await store.pool.fetchval("SELECT count(*) FROM syncd.users") == n


async def _watermarked(store) -> bool:
    return await store.feed_watermark("corp") is not None


async def _is(value, expected) -> bool:
    return await value == expected
