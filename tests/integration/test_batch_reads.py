"""Reading many users per request (issue #16) against the fake providers and
a real PostgreSQL: ZITADEL's ListUsers by ids and SCIM's ``id eq … or …``
read a pass in a few requests; a user missing from a batch answer is read by
id (and deleted only through its own 404s); a server that ignores the filter
is caught and batching switched off; no document is taken for an id not
asked; Retry-After holds; Fortanix reads by id as before."""

from __future__ import annotations

import pytest

from syncd import metrics
from syncd.testing.dialects import fake
from tests.integration.conftest import FAST, TOKEN_ENV

N = 250


async def batched_engine(f, store, make_config, engine_for, n=N, **over):
    ids = f.seed(n)
    await store.add_targets("corp", ids)
    engine = await engine_for(make_config(("corp", f), refresh="auto", **{**FAST, **over}))
    return ids, engine


def by_id_reads(f, ids) -> list:
    return [r for r in f.user_requests() if any(r.path.split("?")[0].endswith("/" + uid) for uid in ids)]


def batch_reads(f) -> list:
    return [r for r in f.user_requests() if r.path.split("?")[0].endswith(("/v2/users", "/Users"))]


async def mirrored(store) -> int:
    return await store.pool.fetchval("SELECT count(*) FROM syncd.users WHERE deleted_at IS NULL")


@pytest.mark.parametrize("provider", ["zitadel", "scim", "webex"], indirect=True)
async def test_a_pass_reads_its_users_a_hundred_per_request(provider, store, make_config, engine_for):
    ids, engine = await batched_engine(provider, store, make_config, engine_for)
    report = await engine.sync("corp")
    assert report.counts["created"] == N and report.read_mode == "batch"
    assert by_id_reads(provider, ids) == []
    assert len(batch_reads(provider)) == 3  # 250 users, 100 per request
    # the settings read (SCIM's ServiceProviderConfig) included: 0.02 requests per user at most
    assert report.requests / N <= 0.02
    await store.make_due("corp", None)
    again = await engine.sync("corp")
    assert again.counts["unchanged"] == N and again.requests == 3
    provider.modify(ids[7])
    await store.make_due("corp", None)
    changed = await engine.sync("corp")
    assert (changed.counts["updated"], changed.counts["unchanged"]) == (1, N - 1)
    [run] = [r for r in await store.recent_runs(1)]
    assert (run["read_mode"], run["requests"]) == ("batch", 3)


@pytest.mark.parametrize("provider", ["zitadel", "scim"], indirect=True)
async def test_a_user_missing_from_a_batch_is_read_by_id_and_deleted_only_by_its_404(
    provider, store, make_config, engine_for
):
    ids, engine = await batched_engine(
        provider,
        store,
        make_config,
        engine_for,
        sync={"delete_confirmations": 2, "delete_confirm_after": "1s"},
    )
    await engine.sync("corp")
    gone = ids[42]
    provider.users.pop(gone)
    await store.make_due("corp", None)
    first = await engine.sync("corp")
    assert (first.counts["not_found"], first.counts["deleted"]) == (1, 0)  # one 404: not confirmed yet
    assert [r.path for r in by_id_reads(provider, [gone])] != []
    assert by_id_reads(provider, set(ids) - {gone}) == []
    assert engine.runtime("corp").reads.batch_size == 100  # a missing user is no reason to stop batching
    await store.pool.execute(
        "UPDATE syncd.targets SET not_found_since = not_found_since - interval '2 seconds'"
    )
    await store.make_due("corp", None)
    second = await engine.sync("corp")
    assert second.counts["deleted"] == 1 and await mirrored(store) == N - 1


@pytest.mark.parametrize(
    ("ptype", "quirk"),
    [
        ("scim", "filter_ignored_silently"),
        ("zitadel", "filter_ignored_silently"),
        ("scim", "filter_answers_none"),
    ],
)
async def test_a_server_that_ignores_the_id_filter_is_caught_and_read_by_id(
    ptype, quirk, store, make_config, engine_for, monkeypatch, logs
):
    f = fake(ptype)
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids, engine = await batched_engine(f, store, make_config, engine_for, n=30, batch_size_read=10)
        setattr(f.listing, quirk, True)
        report = await engine.sync("corp")
    # every user mirrored from its own by-id read, none from another's document
    assert report.counts["created"] == 30 and report.counts["failed"] == 0
    assert report.read_mode == "by_id"
    rows = await store.pool.fetch("SELECT user_id, raw FROM syncd.users")
    assert len(rows) == 30 and all(r["user_id"] in ids for r in rows)
    [disabled] = [e for e in logs if e["event"] == "reads.batching_disabled"]
    assert "ignores the id filter" in disabled["reason"]
    assert metrics.BATCH_READS.labels("corp")._value.get() == 0
    # switched off at the first answer: only the requests of the first leased
    # batch, sent together (30 users, 10 per request), were batch reads
    assert len(batch_reads(f)) <= 3


async def test_batching_never_waits_less_than_a_retry_after(store, make_config, engine_for, monkeypatch):
    f = fake("zitadel")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        _, engine = await batched_engine(f, store, make_config, engine_for, n=300, max_attempts=5)
        f.inject("429", retry_after="1", only_path="/v2/users", times=2)
        report = await engine.sync("corp")
        assert report.counts["created"] == 300
        assert f.early_requests() == []


async def test_a_hostile_document_in_a_batch_costs_its_own_user(store, make_config, engine_for, monkeypatch):
    from tests.integration.test_hostile_documents import nested_user_body

    f = fake("zitadel")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids, engine = await batched_engine(f, store, make_config, engine_for, n=50)
        bad = ids[3]
        f.inject("body", body=nested_user_body(f, bad, 300), only_path=bad, times=None)
        deep = f.users[bad]["user"]
        nested: list = []
        for _ in range(70):  # deeper than the parser allows: the whole batch answer is refused
            nested = [nested]
        deep["nested"] = nested
        report = await engine.sync("corp")
    assert report.counts["created"] == 49 and report.counts["failed"] == 1
    row = await store.pool.fetchrow("SELECT last_status FROM syncd.targets WHERE user_id = $1", bad)
    assert row["last_status"] == "refused"
    assert engine.runtime("corp").reads.batch_size == 100  # one user's document is no reason to stop


async def test_fortanix_reads_by_id_as_before(store, make_config, engine_for, monkeypatch):
    f = fake("fortanix")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids, engine = await batched_engine(f, store, make_config, engine_for, n=20)
        report = await engine.sync("corp")
    assert report.counts["created"] == 20 and report.read_mode == "by_id"
    assert len(by_id_reads(f, ids)) == 20


async def test_a_server_capping_its_pages_silently_gets_smaller_batches(
    store, make_config, engine_for, monkeypatch
):
    """A server that answers 40 of the 100 ids asked (scim2-server's
    maxPageSize does this while its maxResults says 1000): the 60 left out
    are read by id once, then batches of 40 are asked for."""
    f = fake("scim")
    f.listing.cap, f.listing.announced_max = 40, 1000
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids, engine = await batched_engine(f, store, make_config, engine_for, n=400, sync={"batch_size": 200})
        report = await engine.sync("corp")
        assert report.counts["created"] == 400 and report.read_mode == "batch"
        assert engine.runtime("corp").reads.batch_size == 40
        # only the chunks sent before the first short answer came back read by id
        read_alone = len(by_id_reads(f, ids))
        assert read_alone <= 60 * 4
        await store.make_due("corp", None)
        again = await engine.sync("corp")
        assert again.counts["unchanged"] == 400 and again.requests == 10  # 400 / 40
        assert len(by_id_reads(f, ids)) == read_alone


@pytest.mark.parametrize("provider", ["zitadel", "scim"], indirect=True)
async def test_a_batch_document_seen_before_is_skipped_only_while_it_still_means_the_same(
    provider, store, make_config, engine_for
):
    """A document in a batch answer the same as at the last read is that user
    unchanged, neither mapped nor hashed again; a changed one is diffed, a
    vanished mirror row is written again, and a new redact setting re-maps
    every user (the fingerprint is salted with it)."""
    ids, engine = await batched_engine(provider, store, make_config, engine_for, n=20)
    assert (await engine.sync("corp")).counts["created"] == 20
    hashes = await store.pool.fetch("SELECT body_hash FROM syncd.targets WHERE provider = 'corp'")
    assert all(h["body_hash"] for h in hashes)

    provider.modify(ids[0])
    await store.pool.execute("DELETE FROM syncd.users WHERE user_id = $1", ids[1])
    await store.make_due("corp", None)
    report = await engine.sync("corp")
    assert (report.counts["updated"], report.counts["created"], report.counts["unchanged"]) == (1, 1, 18)

    field = "loginNames" if provider.dialect.type == "zitadel" else "title"
    redacting = await engine_for(
        make_config(("corp", provider), refresh="auto", redact_fields=[field], **FAST)
    )
    await store.make_due("corp", None)
    report = await redacting.sync("corp")
    assert report.counts["updated"] == 20 and report.read_mode == "batch", report.counts
    raws = await store.pool.fetch("SELECT raw FROM syncd.users")
    assert all(field not in (r["raw"].get("user") or r["raw"]) for r in raws)


@pytest.mark.parametrize("provider", ["zitadel"], indirect=True)
async def test_a_batch_answer_older_than_the_mirror_is_read_by_id_not_taken_back(
    provider, store, make_config, engine_for
):
    """ZITADEL answers ListUsers from a projection that can lag a write: after
    a by-id read mirrored a change, the batch answer still shows the user as
    before. That user is read by id; nothing goes back, batching stays on."""
    ids, engine = await batched_engine(provider, store, make_config, engine_for)
    await engine.sync("corp")
    uid = ids[0]
    provider.projection[uid] = provider.users[uid]  # what ListUsers still serves
    provider.modify(uid)
    by_id = await engine_for(make_config(("corp", provider), refresh="by_id", **FAST))
    await store.make_due("corp", [uid])
    assert (await by_id.sync("corp")).counts["updated"] == 1
    await store.make_due("corp", None)
    before = len(by_id_reads(provider, [uid]))
    again = await engine.sync("corp")
    assert (again.counts["updated"], again.counts["unchanged"]) == (0, N)
    assert len(by_id_reads(provider, [uid])) == before + 1  # read by id, as the mirror's is newer
    updates = await store.pool.fetchval("SELECT count(*) FROM syncd.outbox WHERE type = 'user.updated'")
    assert updates == 1
    runtime = engine.runtime("corp")
    assert runtime.reads.name == "batch" and runtime.reads.batch_size == 100
