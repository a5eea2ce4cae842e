"""Nobody but syncd may steer syncd: a NOTIFY is a hint, never a pause.

PostgreSQL lets any role NOTIFY any channel, so a notification on
``syncd_provider_state`` only makes replicas read ``provider_state`` again,
which only syncd's own role can write; whatever is recorded there is capped
at ``retry_after_cap``; an admin can clear a pause for every replica."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
import pytest

from syncd.timeutil import utcnow
from tests.integration.conftest import seeded, wait_for
from tests.integration.test_cli import syncd, write_config


async def notify_as_reader(db_url: str, payload: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("SET ROLE syncd_reader")
        await conn.execute("SELECT pg_notify('syncd_provider_state', $1)", payload)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "payload", ["zitadel 4102444800", "zitadel inf", "zitadel 1e300", "zitadel -inf", "zitadel", "garbage"]
)
async def test_a_notification_from_any_role_pauses_nothing(
    db_url, store, zitadel, make_config, engine_for, logs, payload
):
    """`NOTIFY syncd_provider_state, 'zitadel 4102444800'` sent as syncd_reader
    (or with an absurd number) does not pause the provider: the replica reads
    provider_state again, finds no pause and goes on fetching; no traceback."""
    _, engine = await seeded(store, zitadel, make_config, engine_for, n=5)
    read = engine.hints_read
    await notify_as_reader(db_url, payload)
    # a legitimate hint after the hostile one: once it is read, so was the first
    await notify_as_reader(db_url, "zitadel")
    await wait_for(lambda: engine.hints_read >= read + (1 if payload == "garbage" else 2))
    rt = engine.runtime("zitadel")
    assert not rt.gate.paused()
    report = await engine.sync("zitadel")
    assert report.counts["created"] == 5
    assert not [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e]


async def test_a_flood_of_notifications_is_read_as_a_few_hints(
    db_url, store, zitadel, make_config, engine_for
):
    """20,000 NOTIFYs from syncd_reader cost a few reads of provider_state, not
    one each: the pool stays free for the pass, which syncs every user."""
    ids, engine = await seeded(store, zitadel, make_config, engine_for, n=50)
    read = engine.hints_read
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("SET ROLE syncd_reader")
        await conn.execute(
            "SELECT pg_notify('syncd_provider_state', 'zitadel ' || g) FROM generate_series(1, 20000) g"
        )
        await conn.execute("SELECT pg_notify('syncd_provider_state', 'zitadel last')")
    finally:
        await conn.close()
    report = await asyncio.wait_for(engine.sync("zitadel"), 30)
    assert report.counts["created"] == len(ids)
    await wait_for(lambda: engine.runtime("zitadel").pause_reread.done())
    assert 1 <= engine.hints_read - read <= 20


async def test_an_admin_clear_drops_a_replicas_own_pause_once_not_at_every_later_hint(
    db_url, store, zitadel, make_config, engine_for
):
    """After `syncd pause clear`, a pause this replica takes itself (a 429 with
    no Retry-After) holds, whatever hints arrive later."""
    _, engine = await seeded(store, zitadel, make_config, engine_for, n=1)
    rt = engine.runtime("zitadel")
    read = engine.hints_read
    await store.clear_pause("zitadel")
    await wait_for(lambda: engine.hints_read > read)
    rt.gate.apply_pause(utcnow() + timedelta(seconds=30))
    read = engine.hints_read
    await notify_as_reader(db_url, "zitadel")
    await wait_for(lambda: engine.hints_read > read)
    assert rt.gate.paused()


async def test_syncd_reader_cannot_write_provider_state(db_url, store):
    """The pause every replica obeys lives in a table syncd_reader can't write."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("SET ROLE syncd_reader")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO syncd.provider_state (provider, paused_until) VALUES ('zitadel', 'infinity')"
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE syncd.provider_state SET paused_until = 'infinity'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE syncd.targets SET next_sync_at = 'infinity'")
    finally:
        await conn.close()


async def test_a_recorded_pause_is_capped_at_retry_after_cap(store, zitadel, make_config, engine_for):
    """Even a pause recorded in provider_state holds at most retry_after_cap."""
    _, engine = await seeded(store, zitadel, make_config, engine_for, n=1, retry_after_cap="60s")
    read = engine.hints_read
    await store.set_pause("zitadel", utcnow() + timedelta(days=365 * 70), "HTTP 429")
    await wait_for(lambda: engine.hints_read > read)
    until = engine.runtime("zitadel").gate.paused_until
    assert until is not None and until <= utcnow() + timedelta(seconds=61)


async def test_pause_clear_ends_the_pause_for_running_daemons_and_status_and_readyz_show_it(
    tmp_path, db_url, store, zitadel, start_daemon
):
    """A pause shows in /readyz's body and in `syncd status`; `syncd pause
    clear --provider corp` ends it for the running daemon at once."""
    ids = zitadel.seed(3)
    daemon = await start_daemon(db_url, zitadel.url)
    await store.set_pause("corp", utcnow() + timedelta(minutes=10), "HTTP 429")

    async def paused() -> dict:
        status, body = await daemon.get("/readyz")
        assert status == 200
        return json.loads(body)["paused"]

    await wait_for(lambda: paused(), timeout=15)
    cfg = write_config(tmp_path, db_url, zitadel.url)
    rc, out, _ = await syncd("status", "--config", cfg)
    assert rc == 0 and "HTTP 429" in out

    await store.add_targets("corp", ids)
    rc, out, err = await syncd("pause", "clear", "--provider", "corp", "--config", cfg)
    assert rc == 0, err
    assert "cleared" in out
    assert await wait_for(lambda: _not(paused()), timeout=15)
    # and the daemon syncs the users it was holding back
    await wait_for(
        lambda: store.pool.fetchval("SELECT count(*) = 3 FROM syncd.users WHERE provider = 'corp'"),
        timeout=30,
    )
    rc, out, _ = await syncd("status", "--config", cfg)
    assert "HTTP 429" not in out


async def _not(value) -> bool:
    return not await value
