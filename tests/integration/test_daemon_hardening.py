"""The daemon stays up and answers for itself when the database misbehaves:
an unmigrated schema, a failing health query, a pass that crashes, a database
that stops answering during shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from syncd import config as config_mod
from syncd.daemon import Daemon
from syncd.http import RetryPolicy
from syncd.testing.fake import FakeProvider
from tests.integration.conftest import TOKEN_ENV, DaemonProcess, free_port, wait_for
from tests.integration.pgproxy import PgProxy


async def readyz(d: DaemonProcess) -> tuple[int, dict[str, Any]] | None:
    """The daemon's /readyz answer, or None while it does not listen."""
    try:
        status, text = await d.get("/readyz")
    except aiohttp.ClientError:
        return None
    return status, json.loads(text)


async def readyz_is(d: DaemonProcess, status: int) -> bool:
    answer = await readyz(d)
    return answer is not None and answer[0] == status


def events(d: DaemonProcess) -> list[str]:
    return [e.get("event", "") for e in d.logs()]


async def count(store: Any, sql: str) -> int:
    return await store.pool.fetchval(sql)


async def test_an_unmigrated_database_gives_503_schema_not_current_until_syncd_migrate(
    tmp_path, empty_db_url, zitadel, start_daemon
):
    """`syncd run` before `syncd migrate` keeps running and answers /readyz 503
    naming the pending migrations; after the migration it is ready by itself and
    registers the config's user_ids (which needed the schema)."""
    ids = zitadel.seed(3)
    d = await start_daemon(
        empty_db_url, zitadel.url, name="h", extra=f"user_ids = {json.dumps(ids)}", ready=False
    )

    async def checked() -> tuple[int, dict[str, Any]] | None:
        answer = await readyz(d)
        return answer if answer is not None and answer[1]["database"] else None

    status, body = await wait_for(checked, timeout=20)
    assert status == 503 and body["schema_current"] is False and body["pending_migrations"]
    status, body = await d.get("/healthz")  # the admin server answers meanwhile
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert d.proc.returncode is None

    migrate = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        "migrate",
        "--config",
        str(tmp_path / "h.toml"),
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await migrate.wait() == 0
    await wait_for(lambda: readyz_is(d, 200), timeout=10)

    from syncd.store import Store

    store = await Store.connect(empty_db_url, min_size=1, max_size=1)
    try:
        await wait_for(
            lambda: count(store, "SELECT count(*) FROM syncd.users WHERE provider = 'corp'"), timeout=10
        )
    finally:
        await store.close()
    d.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(d.proc.wait(), 15) == 0
    seen = events(d)
    assert "daemon.schema_not_current" in seen and "daemon.ready" in seen
    assert seen.count("daemon.schema_not_current") == 1  # once, not every health check
    assert "Traceback" not in d.log_path.read_text()


async def test_a_failing_health_query_marks_not_ready_and_the_checks_go_on(
    db_url, store, zitadel, start_daemon
):
    """A PostgreSQL error that is not an outage (here: a table the gauges read is
    missing) makes /readyz 503 with the error; once it is gone, ready again."""
    d = await start_daemon(db_url, zitadel.url, name="h")

    await store.pool.execute("ALTER TABLE syncd.pending_deletions RENAME TO pending_deletions_away")
    await wait_for(lambda: readyz_is(d, 503), timeout=10)
    answer = await readyz(d)
    assert answer is not None
    body = answer[1]
    assert body["database"] is True and body["schema_current"] is True
    assert "UndefinedTableError" in body["error"]

    await store.pool.execute("ALTER TABLE syncd.pending_deletions_away RENAME TO pending_deletions")
    await wait_for(lambda: readyz_is(d, 200), timeout=10)
    assert "daemon.health_check_failed" in events(d)


# -- the daemon in this process --------------------------------------------------------------
def daemon_config(
    monkeypatch: pytest.MonkeyPatch, db_url: str, f: FakeProvider, **daemon: Any
) -> config_mod.Config:
    monkeypatch.setenv(TOKEN_ENV, f.token)
    return config_mod.from_dict(
        {
            "database": {"url": db_url},
            "daemon": {"replica": "inproc", "poll_interval": "100ms", **daemon},
            "sync": {"delete_confirmations": 1, "max_delete_fraction": 1.0, "lease": "5s"},
            "providers": [{**f.provider_config("corp", token_env=TOKEN_ENV), "interval": "1h"}],
        },
        source="<test>",
    )


@contextlib.asynccontextmanager
async def running(d: Daemon) -> AsyncIterator[asyncio.Task[int]]:
    task = asyncio.create_task(d.run())
    try:
        await wait_for(lambda: task.done() or d.ready, timeout=10)
        assert not task.done(), task.result()
        yield task
    finally:
        if not task.done():
            d.stopping.set()
            await asyncio.wait_for(task, 20)


def crash_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "sync.pass_crashed"]


async def test_a_crashing_pass_backs_off_exponentially_and_resets_after_a_good_pass(
    store, db_url, zitadel, logs, monkeypatch
):
    """Every pass crashes (a trigger refuses its run row): the provider's next
    pass waits longer each time (logged as retry_in) instead of starting on the
    next 50 ms tick; one good pass and the next crash starts from the bottom."""
    await store.pool.execute(
        "CREATE FUNCTION syncd.refuse_runs() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'runs refused by the test'; END $$;"
        "CREATE TRIGGER refuse_runs BEFORE INSERT ON syncd.sync_runs"
        " FOR EACH ROW EXECUTE FUNCTION syncd.refuse_runs()"
    )
    ids = zitadel.seed(5)
    await store.add_targets("corp", ids)
    d = Daemon(daemon_config(monkeypatch, db_url, zitadel), listen=f"127.0.0.1:{free_port()}")
    d.crash_retry = RetryPolicy(backoff_base=0.2, backoff_cap=0.8)

    async with running(d):
        seen_at: list[float] = []

        def crashed(n: int) -> bool:
            while len(seen_at) < len(crash_lines(logs)):
                seen_at.append(time.monotonic())
            return len(seen_at) >= n

        await wait_for(lambda: crashed(4), timeout=10, interval=0.005)
        crashes = crash_lines(logs)[:4]
        assert [c["crashes"] for c in crashes] == [1, 2, 3, 4]
        for c, ceiling in zip(crashes, (0.2, 0.4, 0.8, 0.8), strict=True):
            assert ceiling / 2 <= c["retry_in"] <= ceiling  # capped at 0.8
            assert "runs refused by the test" in c["error"] and c["provider"] == "corp"
        for (a, b), c in zip(itertools.pairwise(seen_at[:4]), crashes, strict=False):
            assert b - a >= c["retry_in"] - 0.03  # no pass before the delay it announced

        await store.pool.execute("DROP TRIGGER refuse_runs ON syncd.sync_runs")
        await wait_for(lambda: count(store, "SELECT count(*) FROM syncd.users"), timeout=10)
        await wait_for(lambda: any(e["event"] == "sync.pass_finished" for e in logs), timeout=5)

        await store.pool.execute(
            "CREATE TRIGGER refuse_runs BEFORE INSERT ON syncd.sync_runs"
            " FOR EACH ROW EXECUTE FUNCTION syncd.refuse_runs()"
        )
        before = len(crash_lines(logs))
        await store.make_due("corp", None)
        await wait_for(lambda: len(crash_lines(logs)) > before, timeout=5)
        assert crash_lines(logs)[before]["crashes"] == 1


async def test_sigterm_with_a_database_that_stopped_answering_exits_0_within_the_cleanup_bound(
    store, db_url, zitadel, logs, monkeypatch
):
    """The database goes silent (no answers, no resets): on SIGTERM releasing the
    leases and closing the connections would wait a minute or more; the daemon
    gives up after its clean-up time limit, says so, and exits 0."""
    ids = zitadel.seed(5)
    await store.add_targets("corp", ids)
    proxy = PgProxy(db_url)
    await proxy.start()
    try:
        d = Daemon(
            daemon_config(monkeypatch, proxy.url, zitadel, shutdown_grace="1s"),
            listen=f"127.0.0.1:{free_port()}",
        )
        d.cleanup_timeout = 1.0
        async with running(d) as task:
            await wait_for(lambda: any(e["event"] == "sync.pass_finished" for e in logs), timeout=10)
            proxy.freeze()
            started = time.monotonic()
            os.kill(os.getpid(), signal.SIGTERM)  # the daemon's own handler takes it
            assert await asyncio.wait_for(task, 10) == 0
            took = time.monotonic() - started
        # idle, so no grace to wait: the clean-up limit, then at most 2 s of
        # cancellations and 1 s to close the HTTP sessions (without it: minutes)
        assert took < 1.0 + 3.5
        seen = [e["event"] for e in logs]
        assert "daemon.stopping" in seen and "daemon.cleanup_timed_out" in seen
        assert seen[-1] == "daemon.stopped"
    finally:
        await proxy.stop()


LISTENING = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
)


async def test_losing_the_listen_connection_is_noticed_and_repaired(
    store, db_url, zitadel, logs, monkeypatch
):
    """The one connection that hears `resync --enqueue` and other replicas'
    Retry-After pauses dies (an idle-session killer, a failover of one
    backend): the daemon notices, reads provider_state before every batch
    meanwhile, listens again on one connection, and a peer's pause and an
    enqueued resync announced afterwards reach it at once."""
    d = Daemon(daemon_config(monkeypatch, db_url, zitadel), listen=f"127.0.0.1:{free_port()}")
    async with running(d):
        assert d.engine is not None
        await wait_for(lambda: d.engine.listening, timeout=5)
        assert await count(store, LISTENING) == 1  # one connection for both channels
        killed = await store.pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        assert killed == 1
        await wait_for(lambda: any(e["event"] == "engine.listen_lost" for e in logs), timeout=5)

        async def listening_again() -> bool:
            return bool(d.engine and d.engine.listening and await count(store, LISTENING) == 1)

        await wait_for(listening_again, timeout=10)
        until = datetime.now(UTC) + timedelta(minutes=5)
        await store.set_pause("corp", until, "HTTP 429")  # another replica's 429
        gate = d.engine.runtime("corp").gate
        await wait_for(lambda: gate.paused_until is not None and gate.paused_until >= until, timeout=5)
        await store.pool.execute("SELECT pg_notify('syncd_resync', 'corp')")
        await wait_for(lambda: any(e["event"] == "daemon.resync_requested" for e in logs), timeout=5)
