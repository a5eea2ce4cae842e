"""A discovery is also a refresh (real PostgreSQL, the fake providers on
127.0.0.1): ZITADEL v2 and SCIM list users in the representation of the
by-id read, so the pages bring every listed target's mirror row up to date,
with events, and no request per user. A page is evidence, nothing more: it
enrols no one, deletes no one, leaves a user a pass holds alone, and never
takes a user back to an older document (a lagging listing). Fortanix and
Wacht list another shape: their listings only discover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.discovery.listing import Verdict
from tests.integration.conftest import FAST, TOKEN_ENV
from tests.integration.test_cli import syncd
from tests.integration.test_discovery import discover_config

N = 130
#: the fakes' page cap: 130 users are four pages
CAP = 40
#: the fake's list pages hold at most this many users (the conftest's provider)
LISTING_CAP = CAP
INTERVAL = 3600.0


async def mirrored_engine(f, store, make_config, engine_for, **over):
    """An engine whose provider lists hourly and refreshes hourly, after a
    first discovery and the pass that created everyone."""
    f.seed(N)
    settings = {**FAST, "refresh": "auto", "discover": "1h", "interval": "1h", **over}
    engine = await engine_for(make_config(("corp", f), **settings))
    first = await engine.discover("corp")
    assert first.ok and first.refreshed == 0  # no one was a target yet: enrolled, not written
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users") == 0
    assert (await engine.sync("corp")).counts["created"] == N
    return engine


async def list_again(store) -> None:
    await store.pool.execute("UPDATE syncd.discovery SET next_at = now()")


async def events(store) -> list[tuple[str, str]]:
    rows = await store.pool.fetch(
        "SELECT type, payload->>'user_id' AS user_id FROM syncd.outbox WHERE type <> 'user.created' ORDER BY seq"
    )
    return [(r["type"], r["user_id"]) for r in rows]


async def display_name(store, uid: str) -> str:
    return await store.pool.fetchval(
        "SELECT display_name FROM syncd.users WHERE provider = 'corp' AND user_id = $1", uid
    )


def sent(engine) -> dict[str, int]:
    return dict(engine.runtime("corp").client.sent)


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


@pytest.mark.parametrize("provider", ["zitadel", "webex", "scim"], indirect=True)
async def test_a_listing_refreshes_every_listed_target_with_no_request_per_user(
    provider, store, make_config, engine_for
):
    engine = await mirrored_engine(provider, store, make_config, engine_for)
    ids = list(provider.users)
    changed = ids[3], ids[77], ids[128]
    for uid in changed:
        provider.modify(uid)
    await list_again(store)
    before = sent(engine)
    report = await engine.discover("corp")
    assert report.ok and (report.refreshed, report.changed) == (N, 3)
    # the pages and nothing else: no by-id GET, no batch read
    assert set(delta(before, sent(engine))) <= {"list", "settings"}
    assert await events(store) == [("user.updated", uid) for uid in sorted(changed, key=ids.index)]
    for uid in changed:
        assert "(v" in await display_name(store, uid)
    # refreshed means fresh: the scheduled refresh finds no one due
    soonest = await store.pool.fetchval("SELECT min(next_sync_at) - now() FROM syncd.targets")
    assert soonest > timedelta(seconds=0.8 * INTERVAL)
    before = sent(engine)
    assert (await engine.sync("corp")).counts["fetched"] == 0
    assert delta(before, sent(engine)) == {}
    # and an unchanged directory listed again writes no event
    await list_again(store)
    again = await engine.discover("corp")
    assert (again.refreshed, again.changed) == (N, 0) and len(await events(store)) == 3


@pytest.mark.parametrize("provider", ["fortanix", "wacht"], indirect=True)
async def test_a_listing_of_another_shape_only_discovers(provider, store, make_config, engine_for):
    """Fortanix's and Wacht's listings are not their by-id shape: no one is
    written from them, the users stay due for their own reads."""
    engine = await mirrored_engine(provider, store, make_config, engine_for)
    uid = next(iter(provider.users))
    provider.modify(uid)
    await list_again(store)
    report = await engine.discover("corp")
    assert report.ok and (report.refreshed, report.changed) == (0, 0)
    assert await events(store) == []
    await store.make_due("corp", [uid])
    assert (await engine.sync("corp")).counts["updated"] == 1


@pytest.mark.parametrize("provider", ["zitadel"], indirect=True)
async def test_refresh_by_id_reads_every_user_by_id_even_after_a_listing(
    provider, store, make_config, engine_for
):
    engine = await mirrored_engine(provider, store, make_config, engine_for, refresh="by_id")
    provider.modify(next(iter(provider.users)))
    await list_again(store)
    report = await engine.discover("corp")
    assert report.ok and report.refreshed == 0 and await events(store) == []


@pytest.mark.parametrize("provider", ["zitadel", "scim"], indirect=True)
async def test_a_lagging_listing_never_takes_a_user_back_to_an_older_document(
    provider, store, make_config, engine_for, logs
):
    """ZITADEL's ListUsers reads a projection that can lag a write: the page
    still shows the user as before the change a by-id read already mirrored."""
    engine = await mirrored_engine(provider, store, make_config, engine_for)
    uid = next(iter(provider.users))
    provider.projection[uid] = provider.users[uid]  # what the listing still serves
    provider.modify(uid)
    await store.make_due("corp", [uid])
    await engine.sync("corp")
    newer = await display_name(store, uid)
    assert "(v" in newer
    due = await store.pool.fetchval("SELECT next_sync_at FROM syncd.targets WHERE user_id = $1", uid)
    await list_again(store)
    report = await engine.discover("corp")
    assert report.ok and (report.refreshed, report.changed) == (N - 1, 0)
    assert await display_name(store, uid) == newer
    assert await events(store) == [("user.updated", uid)]  # the by-id read's, only
    row = await store.pool.fetchrow(
        "SELECT leased_by, next_sync_at FROM syncd.targets WHERE user_id = $1", uid
    )
    assert row["leased_by"] is None and row["next_sync_at"] == due  # released, left to its own read
    assert any(e["event"] == "discovery.page_users_left" for e in logs)


@pytest.mark.parametrize("provider", ["zitadel"], indirect=True)
async def test_a_user_a_pass_holds_is_left_to_the_pass(provider, store, make_config, engine_for):
    engine = await mirrored_engine(provider, store, make_config, engine_for)
    uid = next(iter(provider.users))
    provider.modify(uid)
    until = datetime.now(UTC) + timedelta(hours=1)
    await store.pool.execute(
        "UPDATE syncd.targets SET leased_by = 'other-replica', lease_expires_at = $2 WHERE user_id = $1",
        uid,
        until,
    )
    await list_again(store)
    report = await engine.discover("corp")
    assert report.ok and (report.refreshed, report.changed) == (N - 1, 0)
    assert "(v" not in await display_name(store, uid)
    holder = await store.pool.fetchval("SELECT leased_by FROM syncd.targets WHERE user_id = $1", uid)
    assert holder == "other-replica"


@pytest.mark.parametrize("provider", ["scim"], indirect=True)
async def test_a_broken_listing_keeps_what_its_good_pages_refreshed_and_deletes_no_one(
    provider, store, make_config, engine_for
):
    """Short of totalResults: the listing is refused (no one made due, no one
    enrolled), yet the users its complete pages showed changed are mirrored."""
    engine = await mirrored_engine(provider, store, make_config, engine_for)
    ids = list(provider.users)
    provider.modify(ids[0])
    provider.listing.hidden = {ids[-1]}
    await list_again(store)
    report = await engine.discover("corp")
    assert report.verdict is Verdict.INCOMPLETE
    assert (report.refreshed, report.changed) == (N - 1, 1)
    assert await events(store) == [("user.updated", ids[0])]
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users WHERE deleted_at IS NULL") == N


@pytest.mark.parametrize("provider", ["zitadel"], indirect=True)
async def test_a_dry_run_listing_refreshes_no_one(provider, store, make_config, engine_for):
    engine = await mirrored_engine(provider, store, make_config, engine_for)
    provider.modify(next(iter(provider.users)))
    report = await engine.discover("corp", dry_run=True)
    assert report.ok and report.refreshed == 0 and await events(store) == []


@pytest.mark.parametrize("provider", ["scim"], indirect=True)
async def test_syncd_discover_shows_what_the_pages_refreshed(
    provider, store, make_config, engine_for, tmp_path, db_url
):
    await mirrored_engine(provider, store, make_config, engine_for)
    provider.modify(next(iter(provider.users)))
    await list_again(store)
    cfg = discover_config(tmp_path, db_url, provider)
    rc, out, err = await syncd("discover", "--config", cfg, env={TOKEN_ENV: provider.token})
    assert rc == 0, err
    header, row = out.strip().splitlines()[-2:]
    assert header.split()[6:8] == ["REFRESHED", "CHANGED"]
    assert row.split()[6:8] == [str(N), "1"]
