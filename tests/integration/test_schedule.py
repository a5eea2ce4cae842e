"""Scheduling that matches the config (real PostgreSQL, the fake ZITADEL on
127.0.0.1): a deleted user is asked for again at ``deleted_recheck``, not at
every interval; one deleted longer than ``forget_deleted_after`` stops
being a target (its mirror row stays); and a lowered ``interval`` holds
from the daemon's start, not once the old schedule runs out."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.conftest import FAST, TOKEN_ENV, wait_for

HOUR = 3600.0


async def next_sync_in(store, uid: str) -> float:
    return await store.pool.fetchval(
        "SELECT extract(epoch FROM next_sync_at - now())::float8 FROM syncd.targets WHERE user_id = $1", uid
    )


async def deleted_user(zitadel, store, make_config, engine_for, **over):
    ids = zitadel.seed(3)
    engine = await engine_for(make_config(zitadel, interval="10m", **{**FAST, **over}))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    gone = ids[1]
    zitadel.users.pop(gone)
    await store.make_due("zitadel", [gone])
    assert (await engine.sync("zitadel")).counts["deleted"] == 1
    return engine, ids, gone


async def test_a_deleted_user_is_asked_for_again_at_deleted_recheck(zitadel, store, make_config, engine_for):
    engine, ids, gone = await deleted_user(zitadel, store, make_config, engine_for, deleted_recheck="2h")
    assert 0.85 * 2 * HOUR < await next_sync_in(store, gone) < 1.15 * 2 * HOUR
    assert await next_sync_in(store, ids[0]) < 0.2 * HOUR  # the others keep the interval
    await store.make_due("zitadel", [gone])
    again = await engine.sync("zitadel")
    assert again.counts["not_found"] == 1 and again.counts["deleted"] == 0
    assert 0.85 * 2 * HOUR < await next_sync_in(store, gone) < 1.15 * 2 * HOUR


async def test_a_user_deleted_long_ago_stops_being_a_target_and_keeps_its_mirror_row(
    zitadel, store, make_config, engine_for, logs
):
    engine, ids, gone = await deleted_user(zitadel, store, make_config, engine_for, forget_deleted_after="1d")
    also_gone = ids[2]
    zitadel.users.pop(also_gone)
    await store.make_due("zitadel", [also_gone])
    await engine.sync("zitadel")
    await store.pool.execute(
        "UPDATE syncd.users SET deleted_at = now() - interval '25 hours' WHERE user_id = $1", gone
    )
    await store.make_due("zitadel", [ids[0]])  # any pass forgets
    await engine.sync("zitadel")
    targets = {r["user_id"] for r in await store.pool.fetch("SELECT user_id FROM syncd.targets")}
    assert targets == {ids[0], also_gone}  # deleted an hour ago: still checked
    row = await store.pool.fetchrow("SELECT deleted_at FROM syncd.users WHERE user_id = $1", gone)
    assert row is not None and row["deleted_at"] is not None
    forgotten = [e for e in logs if e["event"] == "targets.forgotten"]
    assert forgotten and forgotten[0]["targets"] == 1


async def test_a_lowered_interval_reschedules_the_targets_at_startup(zitadel, store, make_config, engine_for):
    _, ids, gone = await deleted_user(zitadel, store, make_config, engine_for)
    await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now() + interval '10 minutes'")
    await store.pool.execute(
        "UPDATE syncd.targets SET next_sync_at = now() + interval '20 hours' WHERE user_id = $1", gone
    )
    lowered = await engine_for(make_config(zitadel, interval="5s", **FAST))
    await lowered.register_config_targets()
    assert await next_sync_in(store, ids[0]) <= 5.0
    # a deleted user keeps its own cadence (deleted_recheck, 24 h by default)
    assert await next_sync_in(store, gone) > 19 * HOUR


async def test_the_daemon_syncs_at_a_lowered_interval_from_its_start(
    zitadel, store, db_url, make_config, engine_for, start_daemon
):
    """A change from 1 h to 2 s: the targets the old interval put an hour out
    are synced within seconds of the daemon starting."""
    ids = zitadel.seed(3)
    engine = await engine_for(make_config(("corp", zitadel), interval="1h", **FAST))
    await store.add_targets("corp", ids)
    await engine.sync("corp")
    assert await next_sync_in(store, ids[0]) > 0.8 * HOUR
    zitadel.modify(ids[0])
    await start_daemon(db_url, zitadel.url, interval="2s", env={TOKEN_ENV: zitadel.token})

    async def updated() -> bool:
        n = await store.pool.fetchval("SELECT count(*) FROM syncd.outbox WHERE type = 'user.updated'")
        return n == 1

    await wait_for(updated, timeout=20)
    assert await next_sync_in(store, ids[1]) < timedelta(seconds=10).total_seconds()
