"""`syncd run` as a real process: replicas, leases, enqueue, outages, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from syncd.sync.runner import BATCHES_IN_FLIGHT
from tests.integration.conftest import TOKEN_ENV, DaemonProcess, wait_for
from tests.integration.pgproxy import PgProxy


async def count(store, sql: str, *args: Any) -> int:
    return await store.pool.fetchval(sql, *args)


async def equals(store, sql: str, expected: int) -> bool:
    return await count(store, sql) == expected


async def test_two_replicas_share_2000_users_and_survive_a_kill_9(store, zitadel, db_url, start_daemon):
    ids = zitadel.seed(2000)
    zitadel.latency = 0.002
    await store.add_targets("corp", ids)
    a = await start_daemon(db_url, zitadel.url, name="a")
    b = await start_daemon(db_url, zitadel.url, name="b")
    await wait_for(lambda: count(store, "SELECT count(*) FROM syncd.outbox"), timeout=30)
    a.proc.kill()  # SIGKILL mid-run: its leases must expire and be taken over
    await a.proc.wait()

    await wait_for(
        lambda: equals(store, "SELECT count(*) FROM syncd.users WHERE provider = 'corp'", 2000),
        timeout=90,
    )
    await wait_for(
        lambda: equals(store, "SELECT count(*) FROM syncd.targets WHERE leased_by IS NOT NULL", 0), timeout=30
    )
    assert await count(store, "SELECT count(*) FROM syncd.outbox") == 2000
    assert await count(store, "SELECT count(DISTINCT aggregateid) FROM syncd.outbox") == 2000
    assert await count(store, "SELECT count(*) FROM syncd.targets WHERE last_status = 'created'") == 2000
    by_replica = await store.pool.fetch(
        "SELECT replica, sum(created) AS n FROM syncd.sync_runs GROUP BY replica"
    )
    assert {r["replica"] for r in by_replica if r["n"]} >= {"b"}
    fetched = [r for r in zitadel.user_requests() if "/v2/users/" in r.path]
    # each user fetched once, plus what the killed replica had fetched and not
    # written: at most its batches in flight (batch_size 100 in start_daemon)
    assert len(fetched) <= 2000 + BATCHES_IN_FLIGHT * 100
    assert b.proc.returncode is None


async def test_enqueued_resync_is_picked_up_by_a_running_daemon_within_2s(
    tmp_path, store, zitadel, db_url, start_daemon
):
    ids = zitadel.seed(10)
    await store.add_targets("corp", ids)
    await start_daemon(db_url, zitadel.url)
    await wait_for(lambda: equals(store, "SELECT count(*) FROM syncd.users", 10), timeout=20)
    zitadel.modify(ids[3])
    cfg = tmp_path / "d.toml"

    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        "resync",
        "--enqueue",
        "--provider",
        "corp",
        "--user",
        ids[3],
        "--config",
        str(cfg),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and b"marked due" in out
    enqueued = time.monotonic()
    await wait_for(
        lambda: count(store, "SELECT count(*) FROM syncd.outbox WHERE type = 'user.updated'"), timeout=5
    )
    assert time.monotonic() - enqueued < 2.0, (
        f"took {time.monotonic() - enqueued:.2f}s (cli {enqueued - started:.2f}s)"
    )


async def test_daemon_survives_a_database_outage_and_resumes_by_itself(store, zitadel, db_url, start_daemon):
    ids = zitadel.seed(20)
    await store.add_targets("corp", ids)
    proxy = PgProxy(db_url)
    await proxy.start()
    d = await start_daemon(proxy.url, zitadel.url, sync='error_retry = "1s"')
    await wait_for(lambda: equals(store, "SELECT count(*) FROM syncd.users", 20), timeout=20)

    await proxy.cut()
    await wait_for(lambda: _not_ready(d), timeout=15)
    status, body = await d.get("/readyz")
    assert status == 503 and json.loads(body)["database"] is False
    assert (await d.get("/healthz"))[0] == 200
    # upstream changes while the database is away
    zitadel.modify(ids[0])
    await store.make_due("corp", None)
    # the database stays away for 10 s, as during a restart (the fake keeps serving meanwhile)
    outage_until = time.monotonic() + 10
    await wait_for(lambda: time.monotonic() > outage_until, timeout=15, interval=0.2)
    assert not await d.ready()
    await proxy.restore()

    await wait_for(d.ready, timeout=30)
    await wait_for(
        lambda: count(store, "SELECT count(*) FROM syncd.outbox WHERE type = 'user.updated'"), timeout=30
    )
    assert await count(store, "SELECT count(*) FROM syncd.outbox") == 21
    assert d.proc.returncode is None
    events = [e["event"] for e in d.logs()]
    # said once the database went, whoever noticed first (a pass or the health check)
    went = events.index("daemon.not_ready")
    assert "daemon.ready" in events[went:]
    await proxy.cut()


async def _not_ready(d: DaemonProcess) -> bool:
    return not await d.ready()


async def test_metrics_move_and_health_endpoints_answer(store, zitadel, db_url, start_daemon):
    ids = zitadel.seed(5)
    await store.add_targets("corp", ids)
    d = await start_daemon(db_url, zitadel.url)
    await wait_for(lambda: equals(store, "SELECT count(*) FROM syncd.users", 5), timeout=20)

    async def created_metric() -> bool:
        _, text = await d.get("/metrics")
        return 'syncd_users_total{outcome="created",provider="corp"} 5.0' in text

    await wait_for(created_metric, timeout=10)
    _, text = await d.get("/metrics")
    assert 'syncd_events_total{provider="corp",type="user.created"} 5.0' in text
    assert "syncd_fetch_duration_seconds_bucket" in text
    assert 'syncd_last_success_timestamp_seconds{provider="corp"}' in text
    assert "syncd_targets_due" in text and "syncd_database_up 1.0" in text
    status, body = await d.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"


async def test_sigterm_during_a_busy_sync_exits_0_in_grace_with_no_lease_left(
    store, zitadel, db_url, start_daemon
):
    ids = zitadel.seed(3000)
    zitadel.latency = 0.01
    await store.add_targets("corp", ids)
    d = await start_daemon(db_url, zitadel.url, daemon='shutdown_grace = "10s"')
    await wait_for(lambda: count(store, "SELECT count(*) FROM syncd.users"), timeout=20)

    started = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    rc = await asyncio.wait_for(d.proc.wait(), 15)
    assert rc == 0
    assert time.monotonic() - started < 10
    assert await count(store, "SELECT count(*) FROM syncd.targets WHERE leased_by IS NOT NULL") == 0
    mirrored = await count(store, "SELECT count(*) FROM syncd.users")
    assert 0 < mirrored < 3000
    assert await count(store, "SELECT count(*) FROM syncd.outbox") == mirrored
    assert "daemon.stopped" in [e["event"] for e in d.logs()]


async def test_logs_of_a_full_run_never_contain_the_token(store, zitadel, db_url, start_daemon):
    zitadel.token = "sEcReT-token-value-123456"
    ids = zitadel.seed(5)
    await store.add_targets("corp", [*ids, "404404"])
    zitadel.inject("500", times=2)
    d = await start_daemon(db_url, zitadel.url, env={TOKEN_ENV: zitadel.token})
    await wait_for(lambda: equals(store, "SELECT count(*) FROM syncd.users", 5), timeout=20)
    d.proc.send_signal(signal.SIGTERM)
    await d.proc.wait()
    text = d.log_path.read_text()
    assert "daemon.started" in text and "sync.pass_finished" in text
    assert zitadel.token not in text


async def test_a_real_postgres_restart_mid_run_loses_nothing(tmp_path, zitadel, start_daemon):
    """A dedicated embedded PostgreSQL, stopped (pg_ctl -m fast) for 10 s while
    the daemon works, then started again: the daemon recovers by itself."""
    from pgserver._commands import pg_ctl

    from syncd import embedded
    from syncd.store import Store

    # not under tmp_path: pytest keeps its base directory root-only (0700),
    # and another pytest session starting meanwhile resets what pgserver
    # opened for its own user, so the restart below could not enter it
    state = tempfile.TemporaryDirectory(prefix="syncd-test-pg-")
    server = await asyncio.to_thread(embedded.start, Path(state.name) / "pg")
    url = embedded.url(server)
    store = await Store.connect(url)
    try:
        await store.migrate()
        ids = zitadel.seed(1000)
        zitadel.latency = 0.02
        await store.add_targets("corp", ids)
        await store.close()
        d = await start_daemon(url, zitadel.url, sync='error_retry = "1s"')

        # stop the database in the middle of the first pass
        await wait_for(lambda: _mirrored_some(url), timeout=20)
        await asyncio.to_thread(
            pg_ctl, ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user
        )
        await wait_for(lambda: _not_ready(d), timeout=15)
        stopped_at = time.monotonic()
        await wait_for(lambda: time.monotonic() - stopped_at > 10, timeout=15, interval=0.2)
        await asyncio.to_thread(server.ensure_postgres_running)

        await wait_for(d.ready, timeout=30)
        store = await Store.connect(url)
        await wait_for(lambda: equals(store, "SELECT count(*) FROM syncd.users", 1000), timeout=60)
        await wait_for(
            lambda: equals(store, "SELECT count(*) FROM syncd.targets WHERE leased_by IS NOT NULL", 0),
            timeout=30,
        )
        assert await count(store, "SELECT count(*) FROM syncd.outbox") == 1000
        assert await count(store, "SELECT count(DISTINCT aggregateid) FROM syncd.outbox") == 1000
        assert d.proc.returncode is None
    finally:
        await store.close()
        await asyncio.to_thread(server.cleanup)
        state.cleanup()


async def _mirrored_some(url: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return 0 < await conn.fetchval("SELECT count(*) FROM syncd.users") < 1000
    finally:
        await conn.close()
