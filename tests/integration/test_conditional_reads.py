"""Conditional reads (issue #16) against the fake providers and a real
PostgreSQL: a by-id read of a user whose ETag we hold sends If-None-Match,
and a 304 Not Modified (RFC 7644 §3.14) leaves the mirror row, its raw
document and the outbox as they are and only moves the schedule on; a
changed user answers 200 and its new ETag is kept; a 304 to a plain GET is
an error, not "unchanged"; a hostile ETag is neither kept nor sent; a mirror
row gone means a plain GET; providers without ETags read as before."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from syncd import jsonutil, metrics
from syncd.testing.dialects import fake
from syncd.testing.dialects.scim import scim_etag
from syncd.testing.fake import FakeProvider
from tests.integration.conftest import FAST, TOKEN_ENV, wait_for

N = 6

MIRROR = "SELECT user_id, raw, content_hash, synced_at, changed_at FROM syncd.users ORDER BY user_id"
TARGETS = (
    "SELECT user_id, etag, etag_scope, last_status, last_error, next_sync_at - now() AS due_in"
    " FROM syncd.targets WHERE provider = 'corp' ORDER BY user_id"
)


@pytest.fixture(autouse=True)
def _debug_logs() -> Iterator[None]:
    """Debug lines reach ``capture_logs`` whatever level an earlier in-process
    CLI test configured (``user.not_modified`` is logged at debug)."""
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**before)


async def synced(
    f: FakeProvider, store, make_config, engine_for, n: int = N, **over: Any
) -> tuple[list, Any]:
    """``n`` users of ``f`` synced once (read by id), and the engine."""
    ids = f.seed(n)
    await store.add_targets("corp", ids)
    engine = await engine_for(make_config(("corp", f), **{**FAST, **over}))
    assert (await engine.sync("corp")).counts["created"] == n
    return ids, engine


def reads_of(f: FakeProvider, user_id: str | None = None) -> list:
    """The by-id reads the fake answered (of one user, or all)."""
    return [
        r
        for r in f.user_requests()
        if "/Users/" in r.path or "/users/" in r.path
        if user_id is None or r.path.split("?")[0].endswith("/" + user_id)
    ]


def body_of(f: FakeProvider, user_id: str) -> str:
    return jsonutil.dumps(f.users[user_id])


async def table(store, sql: str) -> dict[str, Any]:
    return {r["user_id"]: dict(r) for r in await store.pool.fetch(sql)}


async def events(store) -> list[tuple[str, str]]:
    rows = await store.pool.fetch("SELECT aggregateid, type FROM syncd.outbox ORDER BY seq")
    return [(r["aggregateid"], r["type"]) for r in rows]


def gets() -> float:
    return metrics.REQUESTS.labels("corp", "get")._value.get()


@pytest.mark.parametrize("provider", ["scim", "webex", "wacht"], indirect=True)
async def test_an_unchanged_user_is_read_with_if_none_match_and_its_304_changes_nothing(
    provider, store, make_config, engine_for, logs
):
    ids, engine = await synced(provider, store, make_config, engine_for)
    targets = await table(store, TARGETS)
    # the answer's ETag is kept per user, verbatim (weak: W/"…")
    assert {uid: t["etag"] for uid, t in targets.items()} == {
        uid: scim_etag(body_of(provider, uid)) for uid in ids
    }
    assert all(t["etag"].startswith('W/"') for t in targets.values())
    mirror, outbox = await table(store, MIRROR), await events(store)
    provider.requests.clear()
    sent = gets()

    await store.make_due("corp", None)
    report = await engine.sync("corp")

    assert (report.counts["fetched"], report.counts["unchanged"], report.counts["failed"]) == (N, N, 0)
    assert {r.if_none_match for r in reads_of(provider)} == {t["etag"] for t in targets.values()}
    assert [r.status for r in reads_of(provider)] == [304] * N and provider.not_modified == N
    assert await table(store, MIRROR) == mirror  # raw, hash, synced_at, changed_at: as they were
    assert await events(store) == outbox
    after = await table(store, TARGETS)
    assert {uid: t["etag"] for uid, t in after.items()} == {uid: t["etag"] for uid, t in targets.items()}
    # refreshed as after any unchanged read: due again in an interval (15 min ±10 %)
    assert all(t["last_status"] == "unchanged" and t["due_in"].total_seconds() > 800 for t in after.values())
    assert gets() - sent == N and report.requests == N  # a 304 is a "get" like any other
    assert sorted(e["user_id"] for e in logs if e["event"] == "user.not_modified") == sorted(ids)
    assert {e["log_level"] for e in logs if e["event"] == "user.not_modified"} == {"debug"}


async def test_a_changed_user_answers_200_its_new_document_an_update_and_a_new_etag(
    provider, store, make_config, engine_for
):
    ids, engine = await synced(provider, store, make_config, engine_for)
    changed = ids[2]
    old = (await table(store, TARGETS))[changed]["etag"]
    provider.modify(changed)
    new = scim_etag(body_of(provider, changed))
    assert new != old

    await store.make_due("corp", None)
    report = await engine.sync("corp")

    assert (report.counts["updated"], report.counts["unchanged"]) == (1, N - 1)
    [read] = reads_of(provider, changed)[-1:]
    assert (read.if_none_match, read.status) == (old, 200)
    assert provider.not_modified == N - 1
    raw = await store.pool.fetchval("SELECT raw FROM syncd.users WHERE user_id = $1", changed)
    assert raw == provider.users[changed]
    assert (await events(store))[-1] == (f"corp:{changed}", "user.updated")
    assert (await table(store, TARGETS))[changed]["etag"] == new

    await store.make_due("corp", [changed])
    again = await engine.sync("corp")
    assert again.counts["unchanged"] == 1
    assert (reads_of(provider, changed)[-1].if_none_match, reads_of(provider, changed)[-1].status) == (
        new,
        304,
    )


async def test_a_304_to_a_read_without_if_none_match_is_an_error_not_unchanged(
    provider, store, make_config, engine_for, logs
):
    ids, engine = await synced(provider, store, make_config, engine_for)
    odd = ids[1]
    await store.pool.execute("UPDATE syncd.targets SET etag = NULL WHERE user_id = $1", odd)
    mirror, outbox = await table(store, MIRROR), await events(store)
    provider.inject("not_modified", only_path=odd)  # a 304 whatever the request asked

    await store.make_due("corp", None)
    report = await engine.sync("corp")

    read = reads_of(provider, odd)[-1]
    assert (read.if_none_match, read.status) == (None, 304)
    assert (report.counts["failed"], report.counts["unchanged"]) == (1, N - 1)
    target = (await table(store, TARGETS))[odd]
    assert target["last_status"] == "error" and "304" in target["last_error"]
    assert target["due_in"].total_seconds() < 800  # retried soon, not after an interval
    assert await table(store, MIRROR) == mirror and await events(store) == outbox  # nothing lost
    [failed] = [e for e in logs if e["event"] == "user.fetch_failed"]
    assert failed["user_id"] == odd and failed["status"] == 304

    # a user never mirrored: the 304 is no creation either (and no crash)
    fresh = provider.seed(1, start=100)[0]
    await store.add_targets("corp", [fresh])
    provider.inject("not_modified", only_path=fresh)
    first = await engine.sync("corp")
    assert first.counts["failed"] == 1 and first.counts["created"] == 0
    assert fresh not in await table(store, MIRROR)


@pytest.mark.parametrize(
    "hostile",
    [
        'W/"' + "a" * 300 + '"',  # far longer than any real ETag
        'W/"a\tb"',  # a control character aiohttp lets through
        '"a b"',
        'W/"café"',
    ],
    ids=["too-long", "tab", "space", "non-ascii"],
)
async def test_a_hostile_etag_is_neither_stored_nor_sent(
    provider, store, make_config, engine_for, logs, hostile
):
    provider.etag_of = lambda body: hostile
    ids, engine = await synced(provider, store, make_config, engine_for)
    assert [t["etag"] for t in (await table(store, TARGETS)).values()] == [None] * N
    ignored = [e for e in logs if e["event"] == "user.etag_ignored"]
    assert sorted(e["user_id"] for e in ignored) == sorted(ids)
    assert {e["log_level"] for e in ignored} == {"warning"}
    assert all(hostile not in str(e) for e in ignored)  # the value itself is not logged

    await store.make_due("corp", None)
    report = await engine.sync("corp")
    assert report.counts["unchanged"] == N
    assert [r.if_none_match for r in reads_of(provider)] == [None] * (2 * N)
    assert provider.not_modified == 0


async def test_an_etag_in_the_database_with_a_line_break_is_never_sent(
    provider, store, make_config, engine_for
):
    """Whatever a column holds, a header that would split is not sent: the read is a plain GET."""
    ids, engine = await synced(provider, store, make_config, engine_for, n=1)
    await store.pool.execute("UPDATE syncd.targets SET etag = 'W/\"a\"\r\nX-Injected: 1'")
    await store.make_due("corp", None)
    report = await engine.sync("corp")
    assert report.counts["unchanged"] == 1
    read = reads_of(provider)[-1]
    assert (read.if_none_match, read.status) == (None, 200)
    assert (await table(store, TARGETS))[ids[0]]["etag"] == scim_etag(body_of(provider, ids[0]))


async def test_a_mirror_row_deleted_by_hand_means_a_plain_get(provider, store, make_config, engine_for):
    ids, engine = await synced(provider, store, make_config, engine_for)
    gone = ids[3]
    assert (await table(store, TARGETS))[gone]["etag"] is not None
    await store.pool.execute("DELETE FROM syncd.users WHERE user_id = $1", gone)

    await store.make_due("corp", None)
    report = await engine.sync("corp")

    assert (report.counts["created"], report.counts["unchanged"]) == (1, N - 1)
    read = reads_of(provider, gone)[-1]
    assert (read.if_none_match, read.status) == (None, 200)
    raw = await store.pool.fetchval("SELECT raw FROM syncd.users WHERE user_id = $1", gone)
    assert raw == provider.users[gone]
    assert (await events(store))[-1] == (f"corp:{gone}", "user.created")


async def test_a_200_without_an_etag_clears_the_stored_one(provider, store, make_config, engine_for):
    _, engine = await synced(provider, store, make_config, engine_for)
    provider.etag_of = lambda body: None  # the server stopped sending ETags
    await store.make_due("corp", None)
    assert (await engine.sync("corp")).counts["unchanged"] == N
    assert [t["etag"] for t in (await table(store, TARGETS)).values()] == [None] * N
    await store.make_due("corp", None)
    assert (await engine.sync("corp")).counts["unchanged"] == N
    assert [r.if_none_match for r in reads_of(provider)[-N:]] == [None] * N


async def test_an_etag_kept_under_other_settings_is_not_sent(provider, store, make_config, engine_for):
    """An edited ignore/redact setting (or an upgrade) maps every user again: a 304 can't."""
    await synced(provider, store, make_config, engine_for)
    other = await engine_for(make_config(("corp", provider), ignore_fields=["title"], **FAST))
    await store.make_due("corp", None)
    report = await other.sync("corp")
    assert report.counts["fetched"] == N and provider.not_modified == 0
    assert [r.if_none_match for r in reads_of(provider)[-N:]] == [None] * N
    # kept again under the new settings, and sent from then on
    await store.make_due("corp", None)
    assert (await other.sync("corp")).counts["unchanged"] == N and provider.not_modified == N


async def test_a_dry_run_takes_a_304_as_unchanged_and_writes_nothing(
    provider, store, make_config, engine_for
):
    ids, engine = await synced(provider, store, make_config, engine_for)
    provider.modify(ids[0])
    schedule = "SELECT user_id, etag, next_sync_at, last_status FROM syncd.targets ORDER BY user_id"
    before, mirror = await table(store, schedule), await table(store, MIRROR)
    report = await engine.dry_run("corp")
    assert (report.counts["updated"], report.counts["unchanged"]) == (1, N - 1)
    assert provider.not_modified == N - 1
    assert await table(store, schedule) == before and await table(store, MIRROR) == mirror


@pytest.mark.parametrize("provider", ["fortanix", "zitadel"], indirect=True)
async def test_a_provider_without_etags_reads_as_before(provider, store, make_config, engine_for):
    ids, engine = await synced(provider, store, make_config, engine_for)
    await store.make_due("corp", None)
    assert (await engine.sync("corp")).counts["unchanged"] == N
    provider.modify(ids[0])
    await store.make_due("corp", None)
    changed = await engine.sync("corp")
    assert (changed.counts["updated"], changed.counts["unchanged"]) == (1, N - 1)
    assert all(r.if_none_match is None and r.status == 200 for r in reads_of(provider))
    assert len(reads_of(provider)) == 3 * N
    assert [t["etag"] for t in (await table(store, TARGETS)).values()] == [None] * N


async def test_the_daemon_reads_unchanged_users_with_304s_and_schedules_them_an_interval_ahead(
    store, db_url, start_daemon, monkeypatch
):
    f = fake("scim")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(N)
        await store.add_targets("corp", ids)
        d = await start_daemon(db_url, f.url, ptype="scim", env={"SYNCD_LOGGING_LEVEL": "debug"})
        await wait_for(lambda: len(reads_of(f)) == N, timeout=30)
        await wait_for(
            lambda: store.pool.fetchval("SELECT count(*) = $1 FROM syncd.targets WHERE etag IS NOT NULL", N)
        )
        await store.make_due("corp", None)
        await wait_for(lambda: f.not_modified == N, timeout=30)
        await wait_for(
            lambda: store.pool.fetchval(
                "SELECT count(*) = $1 FROM syncd.targets"
                " WHERE last_status = 'unchanged' AND next_sync_at > now() + interval '50 minutes'",
                N,
            ),
            timeout=30,
        )
        status, text = await d.get("/metrics")
        assert status == 200
        [gets_line] = [
            line
            for line in text.splitlines()
            if line.startswith("syncd_requests_total{") and 'kind="get"' in line and 'provider="corp"' in line
        ]
        assert float(gets_line.split()[-1]) == 2 * N, gets_line
        await wait_for(lambda: len([e for e in d.logs() if e.get("event") == "user.not_modified"]) == N)
    assert len(reads_of(f)) == 2 * N  # each read once more, none again (the schedule holds)
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox") == N
