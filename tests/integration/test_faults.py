"""Fault injection: what an operator expects when a provider misbehaves.

The fake provider records every request's arrival time and every
Retry-After it announced, so the tests can prove that no request reached a
paused provider before the instant it asked for."""

from __future__ import annotations

import asyncio
import time

import pytest

from syncd.engine import Engine
from syncd.testing.fake import retry_after_date
from tests.integration.conftest import FAST, TOKEN_ENV, seeded, wait_for


async def n_events(store, type_: str | None = None) -> int:
    return await store.pool.fetchval(
        "SELECT count(*) FROM syncd.outbox WHERE $1::text IS NULL OR type = $1", type_
    )


async def resync(engine, name="zitadel"):
    await engine.store.make_due(name, None)
    return await engine.sync(name, trigger="resync")


@pytest.mark.parametrize("status", ["429", "503", "423"])
@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_pauses_the_whole_provider_until_that_instant(
    store, zitadel, make_config, engine_for, status, form
):
    _, engine = await seeded(store, zitadel, make_config, engine_for, concurrency=4)
    zitadel.inject(status, retry_after="1" if form == "seconds" else retry_after_date(2))

    report = await engine.sync("zitadel")

    assert report.counts["created"] == 20 and report.counts["failed"] == 0
    assert await n_events(store) == 20
    [announced] = zitadel.announcements
    assert zitadel.early_requests() == []
    assert max(r.at for r in zitadel.requests) >= announced.until - 0.001
    pause = await store.get_pause("zitadel")
    assert pause is not None  # recorded for every replica


async def test_two_engines_sharing_a_database_both_honour_one_retry_after(
    store, zitadel, make_config, engine_for
):
    ids = zitadel.seed(60)
    cfg = make_config(zitadel, concurrency=2, sync={"batch_size": 10}, **FAST)
    a = await engine_for(cfg, replica="a")
    b = await engine_for(cfg, replica="b")
    await store.add_targets("zitadel", ids)
    zitadel.latency = 0.005
    zitadel.inject("429", retry_after="1")

    ra, rb = await asyncio.gather(a.sync("zitadel"), b.sync("zitadel"))

    assert ra.counts["created"] + rb.counts["created"] == 60
    assert await n_events(store) == 60
    assert len(zitadel.announcements) == 1
    assert zitadel.early_requests() == [], "a request reached the provider before its Retry-After"


async def test_an_absurd_retry_after_is_capped_and_logged(store, zitadel, make_config, engine_for, logs):
    _, engine = await seeded(store, zitadel, make_config, engine_for, n=3, retry_after_cap="1s")
    zitadel.inject("429", retry_after="86400")
    started = time.monotonic()
    report = await engine.sync("zitadel")
    assert report.counts["created"] == 3
    assert time.monotonic() - started < 10
    capped = [e for e in logs if e["event"] == "provider.retry_after_capped"]
    assert capped and capped[0]["retry_after"] == "86400" and capped[0]["provider"] == "zitadel"


@pytest.mark.parametrize(
    ("kind", "kw"),
    [
        ("503", {}),
        ("500", {}),
        ("html", {}),
        ("reset", {}),
        ("slow", {"delay": 1.0}),
    ],
)
async def test_transient_failures_are_retried_with_backoff_and_the_mirror_ends_correct(
    store, zitadel, make_config, engine_for, logs, kind, kw
):
    _, engine = await seeded(
        store, zitadel, make_config, engine_for, n=10, concurrency=2, read_timeout="300ms"
    )
    zitadel.inject(kind, times=2, **kw)

    report = await engine.sync("zitadel")

    assert report.counts["created"] == 10 and report.counts["failed"] == 0
    assert await n_events(store) == 10
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users") == 10
    assert sum(1 for r in zitadel.requests if r.fault == kind) == 2
    if kind != "reset":  # aiohttp itself retries a GET once on a dropped keep-alive connection
        retries = [e for e in logs if e["event"] == "provider.retrying"]
        assert len(retries) >= 1 and retries[0]["provider"] == "zitadel"


@pytest.mark.parametrize("kind", ["truncated", "garbage", "wrong_type", "missing_id"])
async def test_a_malformed_answer_is_a_per_user_error_and_leaves_the_mirror_row_untouched(
    store, zitadel, make_config, engine_for, logs, kind
):
    ids, engine = await seeded(store, zitadel, make_config, engine_for, n=5)
    await engine.sync("zitadel")
    before = await store.pool.fetchrow(
        "SELECT *, xmin::text AS v FROM syncd.users WHERE user_id = $1", ids[2]
    )
    for uid in ids:
        zitadel.modify(uid)
    zitadel.inject(kind, times=None, only_path=ids[2])

    report = await resync(engine)

    assert report.counts["failed"] == 1 and report.counts["updated"] == 4
    after = await store.pool.fetchrow("SELECT *, xmin::text AS v FROM syncd.users WHERE user_id = $1", ids[2])
    assert after == before
    target = await store.pool.fetchrow("SELECT * FROM syncd.targets WHERE user_id = $1", ids[2])
    assert target["last_status"] == "error" and target["attempts"] == 1
    assert target["last_error"]
    [failed] = [e for e in logs if e["event"] == "user.fetch_failed"]
    assert failed["user_id"] == ids[2] and failed["provider"] == "zitadel"
    assert failed["error_type"] == "MalformedResponse"


async def test_a_500_storm_opens_the_circuit_and_touches_nothing(
    store, zitadel, make_config, engine_for, logs
):
    _, engine = await seeded(
        store,
        zitadel,
        make_config,
        engine_for,
        n=40,
        concurrency=2,
        max_attempts=2,
        circuit_failures=5,
        circuit_cooldown="1h",
        sync={"batch_size": 10},
    )
    await engine.sync("zitadel")
    snapshot = await store.pool.fetch("SELECT *, xmin::text AS v FROM syncd.users ORDER BY user_id")
    zitadel.inject("500", times=None)
    zitadel.requests.clear()

    report = await resync(engine)

    assert report.status == "aborted" and "circuit open" in report.error
    assert len(zitadel.requests) < 20  # it stopped sending instead of hammering
    assert await store.pool.fetch("SELECT *, xmin::text AS v FROM syncd.users ORDER BY user_id") == snapshot
    assert await n_events(store) == 40
    assert (
        await store.pool.fetchval("SELECT circuit FROM syncd.provider_state WHERE provider = 'zitadel'")
        == "open"
    )
    assert any(e["event"] == "provider.circuit_open" for e in logs)
    # still due: the next pass after the cool-down picks them up
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.targets WHERE next_sync_at <= now()") > 0


async def test_circuit_probes_once_after_cooldown_and_resumes(store, zitadel, make_config, engine_for):
    _, engine = await seeded(
        store,
        zitadel,
        make_config,
        engine_for,
        n=10,
        concurrency=1,
        max_attempts=1,
        circuit_failures=3,
        circuit_cooldown="200ms",
    )
    zitadel.inject("500", times=3)
    before = len(zitadel.user_requests())
    first = await engine.sync("zitadel")
    # three 500s open the circuit; the other seven are refused without a request
    assert first.counts["failed"] == 10 and first.counts["fetched"] == 0
    assert len(zitadel.user_requests()) - before == 3
    gate = engine.runtime("zitadel").gate
    await wait_for(lambda: gate.circuit.state == "half_open", timeout=5)
    await store.make_due("zitadel", None)
    second = await engine.sync("zitadel")
    assert second.status == "ok"
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users") == 10


async def test_a_provider_down_for_the_whole_run_leaves_the_mirror_untouched(
    store, zitadel, make_config, engine_for
):
    _, engine = await seeded(
        store, zitadel, make_config, engine_for, n=10, max_attempts=2, circuit_failures=1000
    )
    await engine.sync("zitadel")
    snapshot = await store.pool.fetch("SELECT *, xmin::text AS v FROM syncd.users ORDER BY user_id")
    await zitadel.stop()  # connection refused from now on

    report = await resync(engine)

    assert report.counts["failed"] == 10 and report.counts["deleted"] == 0
    assert await store.pool.fetch("SELECT *, xmin::text AS v FROM syncd.users ORDER BY user_id") == snapshot
    assert await n_events(store) == 10
    errors = await store.pool.fetch("SELECT last_error FROM syncd.targets")
    assert all("request failed" in e["last_error"] for e in errors)


async def guarded(store, zitadel, make_config, engine_for) -> tuple[list[str], Engine]:
    """20 users synced, a guard that holds deletions of more than 10 %."""
    ids, engine = await seeded(
        store,
        zitadel,
        make_config,
        engine_for,
        n=20,
        sync={"max_delete_fraction": 0.1, "delete_confirmations": 1},
    )
    await engine.sync("zitadel")
    return ids, engine


async def test_a_mass_deletion_is_held_until_an_admin_approves(store, zitadel, make_config, engine_for, logs):
    ids, engine = await guarded(store, zitadel, make_config, engine_for)
    for uid in ids[:5]:
        del zitadel.users[uid]

    report = await resync(engine)

    assert report.counts["held"] == 5 and report.counts["deleted"] == 0
    assert await n_events(store, "user.deleted") == 0
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users WHERE deleted_at IS NOT NULL") == 0
    held = await store.pending_deletions("zitadel")
    assert sorted(r["user_id"] for r in held) == sorted(ids[:5])
    [err] = [e for e in logs if e["event"] == "sync.mass_deletion_held"]
    assert err["would_delete"] == 5 and err["log_level"] == "error"

    # one of them comes back before the admin looks: it must not be deleted
    zitadel.users[ids[0]] = zitadel.dialect.make_user(0)
    await resync(engine)
    # it answered again, so its held deletion is forgotten
    assert sorted(r["user_id"] for r in await store.pending_deletions("zitadel")) == sorted(ids[1:5])
    deleted, kept, busy = await engine.decide_held_deletions("zitadel", ids[:5], approve=True)
    assert (deleted, kept, busy) == (4, 1, 0)
    assert await n_events(store, "user.deleted") == 4
    assert await store.pending_deletions("zitadel") == []


async def test_a_held_deletion_waits_for_approval_however_the_passes_fall(
    store, zitadel, make_config, engine_for
):
    """The schedule spreads users over many small passes: a later pass that
    confirms a held deletion again, alone, must not carry it out, and a new
    deletion while others are held is held too. A pass that holds a user
    also keeps an admin's approval away from it until it is done."""
    ids, engine = await guarded(store, zitadel, make_config, engine_for)
    for uid in ids[:3]:
        del zitadel.users[uid]
    assert (await resync(engine)).counts["held"] == 3
    # one user per pass, as a jittered schedule would have it
    for uid in ids[:3]:
        await store.make_due("zitadel", [uid])
        report = await engine.sync("zitadel", only=[uid])
        assert report.counts["held"] == 1 and report.counts["deleted"] == 0
    del zitadel.users[ids[3]]  # 1 of 20 alone would pass the guard; with 3 held it doesn't
    await store.make_due("zitadel", [ids[3]])
    assert (await engine.sync("zitadel", only=[ids[3]])).counts["held"] == 1
    assert await n_events(store, "user.deleted") == 0

    # a pass holds ids[0] right now: the admin's approval leaves it for later
    await store.lease_ids("zitadel", "some-pass", 60, [ids[0]])
    deleted, kept, busy = await engine.decide_held_deletions("zitadel", ids[:4], approve=True)
    assert (deleted, kept, busy) == (3, 0, 1)
    assert sorted(r["user_id"] for r in await store.pending_deletions("zitadel")) == [ids[0]]


async def test_a_small_deletion_below_the_guard_goes_through(store, zitadel, make_config, engine_for):
    ids, engine = await seeded(
        store, zitadel, make_config, engine_for, n=20, sync={"max_delete_fraction": 0.1}
    )
    await engine.sync("zitadel")
    del zitadel.users[ids[0]], zitadel.users[ids[1]]
    report = await resync(engine)
    assert report.counts["deleted"] == 2 and report.counts["held"] == 0


async def test_max_delete_count_holds_too(store, zitadel, make_config, engine_for):
    ids, engine = await seeded(
        store,
        zitadel,
        make_config,
        engine_for,
        n=20,
        sync={"max_delete_fraction": 1.0, "max_delete_count": 1},
    )
    await engine.sync("zitadel")
    del zitadel.users[ids[0]], zitadel.users[ids[1]]
    report = await resync(engine)
    assert report.counts["held"] == 2


async def test_a_rejected_token_fails_the_pass_clearly_and_deletes_nothing(
    store, zitadel, make_config, engine_for, logs, monkeypatch
):
    _, engine = await seeded(store, zitadel, make_config, engine_for, n=10)
    await engine.sync("zitadel")
    zitadel.token = "rotated"  # our token no longer works

    report = await resync(engine)

    assert report.status == "failed" and "credentials rejected" in report.error
    assert await n_events(store) == 10
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users WHERE deleted_at IS NOT NULL") == 0
    assert any(e["event"] == "provider.auth_failed" for e in logs)


async def test_an_expired_oauth_token_is_renewed_once_and_the_run_completes(
    store, zitadel, make_config, engine_for, monkeypatch
):
    ids = zitadel.seed(30)
    cfg = make_config(
        zitadel,
        token_env=None,
        client_id="syncd-client",
        client_secret_env=TOKEN_ENV,
        concurrency=1,
        sync={"batch_size": 10},
        **FAST,
    )
    engine = await engine_for(cfg)
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel", max_batches=1)
    zitadel.expire_tokens()

    await engine.sync("zitadel")

    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users") == 30
    token_calls = [r for r in zitadel.requests if r.path == "/oauth/v2/token"]
    assert len(token_calls) == 2
    assert sum(1 for r in zitadel.requests if r.status == 401) == 1


async def test_max_rps_budget_is_respected(store, zitadel, make_config, engine_for):
    """A token bucket: a burst of max_rps, then max_rps requests a second.

    Checked as the bucket's own property, over every window of arrivals: at
    most the burst plus max_rps per second of the window (and one request of
    slack for the fake's clock). A rate measured after the first 40 arrivals
    failed on a loaded machine: a burst that reaches the server spread out
    has refilled tokens by its end, which the bucket rightly spends."""
    _, engine = await seeded(store, zitadel, make_config, engine_for, n=60, concurrency=8, max_rps=40)
    await engine.sync("zitadel")
    arrivals = sorted(r.at for r in zitadel.requests)
    assert len(arrivals) == 60
    worst = max(
        (j - i + 1) - (40 + 40 * (arrivals[j] - arrivals[i]))
        for i in range(len(arrivals))
        for j in range(i, len(arrivals))
    )
    assert worst <= 1, f"{worst:.1f} requests over the bucket's allowance in some window"
    assert arrivals[-1] - arrivals[0] >= (60 - 40) / 40 * 0.9


async def test_a_429_without_retry_after_backs_off_every_worker(
    store, zitadel, make_config, engine_for, logs
):
    """ZITADEL does not promise a Retry-After: a bare 429 still slows the whole provider."""
    _, engine = await seeded(store, zitadel, make_config, engine_for, n=10, concurrency=4)
    zitadel.inject("429", times=1)
    report = await engine.sync("zitadel")
    assert report.counts["created"] == 10 and report.counts["failed"] == 0
    limited = [e for e in logs if e["event"] == "provider.rate_limited"]
    assert limited and limited[0]["retry_after"] is None


async def test_leases_are_renewed_while_a_pass_waits_out_a_long_pause(
    store, zitadel, make_config, engine_for
):
    """A Retry-After longer than the lease must not hand our targets to another replica."""
    _, engine = await seeded(
        store, zitadel, make_config, engine_for, n=4, concurrency=1, sync={"lease": "1s"}
    )
    zitadel.inject("429", retry_after="3")
    task = asyncio.create_task(engine.sync("zitadel"))
    await wait_for(lambda: zitadel.announcements, timeout=5)
    other = await store.lease_due("zitadel", "other-replica", 60, 100)
    await wait_for(lambda: time.time() > zitadel.announcements[0].until - 1.2, timeout=5)
    other += await store.lease_due("zitadel", "other-replica", 60, 100)
    report = await task
    assert other == [] and report.counts["created"] == 4
