"""A hostile or broken document costs its own user, never the provider: one
nested too deep, one too large to store, a batch too large for one jsonb
value, a write PostgreSQL refuses for one user's content. Every provider is a
real HTTP server on 127.0.0.1 and every write goes to a real PostgreSQL."""

from __future__ import annotations

import orjson
import pytest

from syncd.sync import plan as plan_mod
from tests.integration.conftest import seeded
from tests.integration.test_cli import syncd, write_config


def nested_user_body(fake, uid: str, levels: int) -> bytes:
    """``uid``'s valid ZITADEL answer with an array nested ``levels`` deep in it
    (written as text: orjson itself refuses to encode it)."""
    doc = orjson.loads(fake.user_response(uid).body)
    doc["user"]["deep"] = "DEEP"
    return orjson.dumps(doc).replace(b'"DEEP"', b"[" * levels + b"]" * levels)


async def mirrored(store) -> set[str]:
    return {r["user_id"] for r in await store.pool.fetch("SELECT user_id FROM syncd.users")}


async def target(store, uid: str):
    return await store.pool.fetchrow(
        "SELECT last_status, last_error, attempts FROM syncd.targets WHERE user_id = $1", uid
    )


@pytest.mark.parametrize("levels", [100, 300, 1000])
async def test_one_deeply_nested_document_fails_only_its_user(
    store, zitadel, make_config, engine_for, levels
):
    """A body nested 100, 300 or 1000 levels (it parses; orjson can't encode
    past 254) fails that user with a clear error; the other users of its
    batch and of the pass are mirrored, and the pass ends ok."""
    ids, engine = await seeded(store, zitadel, make_config, engine_for, n=300, sync={"batch_size": 100})
    bad = ids[150]
    zitadel.inject("body", body=nested_user_body(zitadel, bad, levels), only_path=bad, times=None)
    report = await engine.sync("zitadel")
    assert report.status == "ok", report.error
    assert await mirrored(store) == set(ids) - {bad}
    assert report.counts["created"] == 299 and report.counts["failed"] == 1
    row = await target(store, bad)
    assert row["last_status"] == "refused"
    assert "document nested more than 64 levels deep" in row["last_error"]


async def test_a_document_over_max_document_bytes_fails_its_user_and_is_quarantined(
    tmp_path, store, zitadel, make_config, engine_for, db_url
):
    """A user whose record is over ``max_document_bytes`` is that user's error
    ("document too large to store"); after ``quarantine_after`` passes it is
    quarantined, and `syncd status` lists it."""
    ids, engine = await seeded(
        store,
        zitadel,
        make_config,
        engine_for,
        n=20,
        sync={"quarantine_after": 2, "error_retry": "10ms"},
        max_document_bytes=64 * 1024,
    )
    bad = ids[3]
    zitadel.users[bad]["user"]["blob"] = "x" * 100_000
    report = await engine.sync("zitadel")
    assert report.counts["created"] == 19 and report.counts["failed"] == 1
    row = await target(store, bad)
    assert row["last_status"] == "refused"
    assert "document too large to store" in row["last_error"] and "max_document_bytes" in row["last_error"]
    await store.make_due("zitadel", [bad])
    await engine.sync("zitadel", trigger="resync")
    assert (await target(store, bad))["last_status"] == "quarantined"
    assert bad not in await mirrored(store)

    cfg = write_config(tmp_path, db_url, zitadel.url)
    rc, out, _ = await syncd("status", "--config", cfg)
    assert rc == 0
    assert "quarantined users" in out and bad in out


async def test_a_batch_over_postgresql_jsonb_limit_is_written_in_parts(
    store, zitadel, make_config, engine_for
):
    """Four users of ~75 MB each (allowed by the config) make one batch of
    ~300 MB, over PostgreSQL's 256 MiB jsonb limit: the batch is written in
    parts and every user is mirrored (before: ProgramLimitExceededError, the
    same batch retried forever)."""
    big = 75 * 1024 * 1024
    ids, engine = await seeded(
        store,
        zitadel,
        make_config,
        engine_for,
        n=4,
        max_body_bytes=big + 1024 * 1024,
        max_document_bytes=big + 1024 * 1024,
        request_timeout="120s",
    )
    for uid in ids:
        zitadel.users[uid]["user"]["blob"] = "x" * big
    report = await engine.sync("zitadel")
    assert report.status == "ok", report.error
    assert report.counts["created"] == 4
    assert await mirrored(store) == set(ids)


async def test_a_write_postgresql_refuses_for_one_user_is_bisected_to_that_user(
    store, zitadel, make_config, engine_for, monkeypatch, logs
):
    """PostgreSQL refuses one user's row (here: a timestamp it can't read):
    the batch is bisected, the 49 others are written with their events, the
    one at fault fails with PostgreSQL's reason and is quarantined when it
    keeps failing; no pass crashes."""
    ids, engine = await seeded(
        store, zitadel, make_config, engine_for, n=50, sync={"quarantine_after": 2, "error_retry": "10ms"}
    )
    bad = ids[17]
    real = plan_mod.change_event

    def poisoned(settings, t, o, kind, row, observed):
        event = real(settings, t, o, kind, row, observed)
        if t["user_id"] == bad and event is not None:
            kind, eid, payload = event
            after = {**orjson.loads(o.record), "updated_at": "the day after tomorrow"}
            return kind, eid, {**payload, "after": after}
        return event

    monkeypatch.setattr(plan_mod, "change_event", poisoned)
    report = await engine.sync("zitadel")
    assert report.status == "ok", report.error
    assert report.counts["created"] == 49 and report.counts["failed"] == 1
    assert await mirrored(store) == set(ids) - {bad}
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox") == 49
    row = await target(store, bad)
    assert row["last_status"] == "refused" and "PostgreSQL refused" in row["last_error"]
    assert any(e["event"] == "user.write_refused" and e["user_id"] == bad for e in logs)

    await store.make_due("zitadel", [bad])
    await engine.sync("zitadel", trigger="resync")
    assert (await target(store, bad))["last_status"] == "quarantined"


async def test_an_outage_before_a_refusal_does_not_quarantine_the_user_at_once(
    store, zitadel, make_config, engine_for
):
    """Quarantine counts refusals in a row: a user whose fetches failed in an
    outage (5xx) and whose document is then refused is "refused", not
    quarantined, until it is refused again."""
    ids, engine = await seeded(
        store,
        zitadel,
        make_config,
        engine_for,
        n=3,
        sync={"quarantine_after": 2, "error_retry": "10ms"},
        max_document_bytes=64 * 1024,
        max_attempts=1,
    )
    bad = ids[0]
    zitadel.inject("500", times=None, only_path=bad)
    for _ in range(3):
        await store.make_due("zitadel", [bad])
        await engine.sync("zitadel", trigger="resync")
    assert (await target(store, bad))["attempts"] == 3
    zitadel.clear_faults()
    zitadel.users[bad]["user"]["blob"] = "x" * 100_000
    await store.make_due("zitadel", [bad])
    await engine.sync("zitadel", trigger="resync")
    assert (await target(store, bad))["last_status"] == "refused"
    await store.make_due("zitadel", [bad])
    await engine.sync("zitadel", trigger="resync")
    assert (await target(store, bad))["last_status"] == "quarantined"
