"""`syncd export`: a new consumer's bootstrap (real PostgreSQL, the fake
ZITADEL, the real CLI). Loading the export and then applying the events
after its `outbox_seq` reproduces the mirror exactly, with no event missed
and none applied twice; a batch still being written when the export starts
is waited for, not half-seen."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import asyncpg

from syncd.cli.export import write_export
from tests.integration.conftest import TOKEN_ENV, wait_for
from tests.integration.test_cli import syncd, write_config


def load(lines: list[str]) -> tuple[int, dict[str, dict]]:
    header, *users, end = (json.loads(line) for line in lines)
    assert header["type"] == "snapshot" and end == {
        "type": "end",
        "outbox_seq": header["outbox_seq"],
        "users": len(users),
    }
    return header["outbox_seq"], {u["user_id"]: u["record"] for u in users}


async def events(store) -> list[asyncpg.Record]:
    return await store.pool.fetch("SELECT seq, type, payload FROM syncd.outbox ORDER BY seq")


async def mirror(store) -> dict[str, dict]:
    from syncd.model.events import record_from_row

    rows = await store.pool.fetch("SELECT * FROM syncd.users WHERE deleted_at IS NULL")
    return {r["user_id"]: record_from_row(r) for r in rows}


def apply(state: dict[str, dict], event: asyncpg.Record) -> None:
    payload = json.loads(event["payload"]) if isinstance(event["payload"], str) else event["payload"]
    if event["type"] == "user.deleted":
        state.pop(payload["user_id"])
    else:
        state[payload["user_id"]] = payload["after"]


async def test_the_export_then_the_events_after_it_are_the_mirror_with_no_gap_or_duplicate(
    tmp_path, store, zitadel, db_url
):
    ids = zitadel.seed(30)
    cfg = write_config(tmp_path, db_url, zitadel.url)
    env = {TOKEN_ENV: zitadel.token}
    assert (await syncd("targets", "add", "--provider", "corp", *ids, "--config", cfg, env=env))[0] == 0
    assert (await syncd("resync", "--all", "--provider", "corp", "--config", cfg, env=env))[0] in (0, 4)
    for uid in ids[:5]:
        zitadel.modify(uid)
    assert (await syncd("resync", "--all", "--provider", "corp", "--config", cfg, env=env))[0] in (0, 4)

    out = tmp_path / "export.jsonl"
    rc, _, err = await syncd("export", "--output", str(out), "--config", cfg, env=env)
    assert rc == 0, err
    position, snapshot = load(out.read_text().splitlines())
    assert position == max(e["seq"] for e in await events(store))
    assert snapshot == await mirror(store)
    # what the snapshot holds is exactly the events up to the position: applying
    # any of them again changes nothing (no duplicate), none is missing (no gap)
    replayed: dict[str, dict] = {}
    for e in await events(store):
        if e["seq"] <= position:
            apply(replayed, e)
    assert replayed == snapshot

    for uid in ids[5:8]:
        zitadel.modify(uid)
    zitadel.users.pop(ids[9])
    assert (await syncd("resync", "--all", "--provider", "corp", "--config", cfg, env=env))[0] in (0, 4)
    consumer = dict(snapshot)
    for e in await events(store):
        if e["seq"] > position:
            apply(consumer, e)
    assert consumer == await mirror(store) and ids[9] not in consumer


async def test_a_batch_in_flight_when_the_export_starts_is_waited_for_not_missed(store):
    """A writer has inserted an event (a lower seq) and its mirror row but not
    committed; another committed a later event. Without waiting, the export
    would take the later seq as its position and miss the first user."""
    in_flight = await asyncpg.connect(store.dsn)
    try:
        tx = in_flight.transaction()
        await tx.start()
        await insert_user(in_flight, "in-flight")
        async with store.pool.acquire() as later:
            await insert_user(later, "committed-later")
        out = io.StringIO()
        export = asyncio.create_task(write_export(store, out, None, include_deleted=False))

        async def export_waits() -> bool:
            return bool(
                await store.pool.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE relation = 'syncd.outbox'::regclass AND NOT granted"
                )
            )

        await wait_for(export_waits, timeout=10)
        assert not export.done()
        await tx.commit()
        await asyncio.wait_for(export, 10)
    finally:
        await in_flight.close()
    position, snapshot = load(out.getvalue().splitlines())
    assert {"in-flight", "committed-later"} <= set(snapshot)
    assert position == await store.pool.fetchval("SELECT max(seq) FROM syncd.outbox")


async def insert_user(conn: asyncpg.Connection, uid: str) -> None:
    """What a write_batch commits for a created user: its event and its mirror row."""
    record = {"user_id": uid, "username": uid, "kind": "human", "emails": [], "raw": {}}
    payload = {"provider": "corp", "user_id": uid, "before": None, "after": record}
    await conn.execute(
        "INSERT INTO syncd.outbox (id, aggregateid, type, payload) VALUES ($1, $2, 'user.created', $3::jsonb)",
        uuid.uuid4(),
        f"corp:{uid}",
        json.dumps(payload),
    )
    await conn.execute(
        "INSERT INTO syncd.users (provider, user_id, username, raw, content_hash) VALUES ('corp', $1, $1, '{}', 'h')",
        uid,
    )
