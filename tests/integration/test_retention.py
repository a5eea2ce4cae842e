"""`[outbox] retention` applied by the daemon itself (real PostgreSQL, the
real `syncd run`): claim consumers lose only what they marked processed;
a stream consumer (Debezium), which marks nothing, has its events pruned by
age; nothing younger than the retention goes."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from syncd.config import OutboxConfig
from syncd.service.retention import prune_every
from tests.integration.conftest import TOKEN_ENV, wait_for


async def add_event(store, uid: str, *, age: timedelta, processed: bool) -> None:
    await store.pool.execute(
        "INSERT INTO syncd.outbox (id, aggregateid, type, payload, created_at, processed_at)"
        " VALUES ($1, $2, 'user.created', $3::jsonb, now() - $4::interval,"
        " CASE WHEN $5 THEN now() END)",
        uuid.uuid4(),
        f"corp:{uid}",
        json.dumps({"user_id": uid}),
        age,
        processed,
    )


async def left(store) -> set[str]:
    return {r["aggregateid"] for r in await store.pool.fetch("SELECT aggregateid FROM syncd.outbox")}


@pytest.mark.parametrize(
    ("consumer", "kept"),
    [
        ("claim", {"corp:old-unread", "corp:new-read", "corp:new-unread"}),
        ("stream", {"corp:new-read", "corp:new-unread"}),
    ],
)
async def test_the_daemon_prunes_the_outbox_by_its_consumer_style(
    consumer, kept, store, db_url, zitadel, start_daemon
):
    await add_event(store, "old-read", age=timedelta(hours=3), processed=True)
    await add_event(store, "old-unread", age=timedelta(hours=3), processed=False)
    await add_event(store, "new-read", age=timedelta(minutes=10), processed=True)
    await add_event(store, "new-unread", age=timedelta(minutes=10), processed=False)
    outbox = f'\n[outbox]\nretention = "1h"\nconsumer = "{consumer}"\n'
    await start_daemon(db_url, zitadel.url, sync=outbox, env={TOKEN_ENV: zitadel.token})

    async def pruned() -> bool:
        return await left(store) == kept

    await wait_for(pruned, timeout=20)


def test_prunes_a_tenth_of_the_retention_apart_at_most_hourly():
    assert prune_every(OutboxConfig()) is None
    assert prune_every(OutboxConfig(retention="10m")) == 60
    assert prune_every(OutboxConfig(retention="7d")) == 3600
    assert prune_every(OutboxConfig(retention="2s")) == 1
