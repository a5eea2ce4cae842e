"""The outbox backlog on /metrics (real PostgreSQL, the fake ZITADEL):
syncd_outbox_unprocessed and the age of the oldest unprocessed event follow
what claim consumers mark processed; 0 and 0 once they caught up."""

from __future__ import annotations

import asyncio

from syncd import metrics
from syncd.service.health import Health
from tests.integration.conftest import seeded


async def test_the_backlog_gauges_follow_what_consumers_mark_processed(
    zitadel, store, make_config, engine_for
):
    _, engine = await seeded(store, zitadel, make_config, engine_for, n=5)
    await engine.sync("zitadel")
    health = Health(["zitadel"], asyncio.Event())
    health.attach(store, engine)
    await health.refresh()
    assert metrics.OUTBOX_UNPROCESSED._value.get() == 5
    assert metrics.OUTBOX_OLDEST_AGE._value.get() >= 0
    await store.pool.execute(
        "UPDATE syncd.outbox SET processed_at = now() WHERE seq <= (SELECT min(seq) + 2 FROM syncd.outbox)"
    )
    await health.refresh()
    assert metrics.OUTBOX_UNPROCESSED._value.get() == 2
    await store.pool.execute("UPDATE syncd.outbox SET processed_at = now() - interval '2 hours'")
    await store.pool.execute(
        "UPDATE syncd.outbox SET processed_at = NULL, created_at = now() - interval '2 hours' WHERE seq = (SELECT max(seq) FROM syncd.outbox)"
    )
    await health.refresh()
    assert metrics.OUTBOX_UNPROCESSED._value.get() == 1
    assert metrics.OUTBOX_OLDEST_AGE._value.get() > 7000  # the alert's "over an hour old"
    await store.pool.execute("UPDATE syncd.outbox SET processed_at = now()")
    await health.refresh()
    assert (metrics.OUTBOX_UNPROCESSED._value.get(), metrics.OUTBOX_OLDEST_AGE._value.get()) == (0, 0)
