"""The core sync path against a real PostgreSQL and a fake ZITADEL over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import jsonpatch
import pytest

from syncd.engine import Engine
from syncd.store import Store
from syncd.sync import fetch as fetch_mod
from syncd.sync.fetch import fetch_batch
from syncd.sync.runner import plan_outcomes
from tests.integration.conftest import wait_for


async def events(store: Store, type_: str | None = None) -> list[asyncpg.Record]:
    return await store.pool.fetch(
        "SELECT * FROM syncd.outbox WHERE $1::text IS NULL OR type = $1 ORDER BY seq", type_
    )


async def mirror(store: Store) -> dict[str, asyncpg.Record]:
    rows = await store.pool.fetch("SELECT *, xmin::text AS version FROM syncd.users")
    return {r["user_id"]: r for r in rows}


async def sync_all(engine: Engine, name: str = "zitadel") -> Any:
    await engine.store.make_due(name, None)
    return await engine.sync(name, trigger="resync")


async def test_first_sync_creates_mirror_rows_and_one_created_event_each(
    store, zitadel, make_config, engine_for
):
    ids = zitadel.seed(20)
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)

    report = await engine.sync("zitadel", trigger="resync")

    assert report.counts["created"] == 20 and report.counts["fetched"] == 20
    rows = await mirror(store)
    assert set(rows) == set(ids)
    human = rows[ids[0]]
    assert human["username"] == "minnie.mouse.0"
    assert human["display_name"] == "Minnie Mouse"
    assert human["email"] == "minnie.mouse.0@acme.com"
    assert human["kind"] == "human" and human["active"] is True
    assert human["source_version"] == "10"
    assert human["raw"]["user"]["userId"] == ids[0]
    assert rows[ids[9]]["kind"] == "machine"
    evs = await events(store)
    assert [e["type"] for e in evs] == ["user.created"] * 20
    ev = evs[0]
    assert ev["aggregatetype"] == "user"
    assert ev["aggregateid"] == f"zitadel:{ev['payload']['user_id']}"
    payload = ev["payload"]
    assert payload["provider"] == "zitadel" and payload["provider_type"] == "zitadel"
    assert payload["before"] is None
    assert payload["after"]["username"] == rows[payload["user_id"]]["username"]
    assert payload["version"] == rows[payload["user_id"]]["source_version"]
    assert jsonpatch.apply_patch({}, payload["patch"]) == payload["after"]
    assert payload["observed_at"]


async def test_second_sync_of_unchanged_users_writes_no_event_and_no_mirror_row(
    store, zitadel, make_config, engine_for
):
    ids = zitadel.seed(30)
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    before = await mirror(store)

    report = await sync_all(engine)

    assert report.counts["unchanged"] == 30 and report.counts["fetched"] == 30
    assert len(await events(store)) == 30
    after = await mirror(store)
    # xmin changes on any UPDATE: identical means not a single mirror write
    assert {k: r["version"] for k, r in after.items()} == {k: r["version"] for k, r in before.items()}
    targets = await store.pool.fetch("SELECT last_status, leased_by FROM syncd.targets")
    assert {t["last_status"] for t in targets} == {"unchanged"}
    assert all(t["leased_by"] is None for t in targets)


async def test_an_upstream_change_gives_user_updated_with_before_after_and_patch(
    store, zitadel, make_config, engine_for
):
    ids = zitadel.seed(5)
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    zitadel.modify(ids[1])

    report = await sync_all(engine)

    assert report.counts["updated"] == 1 and report.counts["unchanged"] == 4
    [ev] = await events(store, "user.updated")
    p = ev["payload"]
    assert p["user_id"] == ids[1]
    assert p["before"]["display_name"] == "Mickey Mouse"
    assert p["after"]["display_name"] == "Mickey Mouse (v12)"
    assert p["version"] == "12"
    assert {"op": "replace", "path": "/display_name", "value": "Mickey Mouse (v12)"} in p["patch"]
    assert jsonpatch.apply_patch(p["before"], p["patch"]) == p["after"]
    row = (await mirror(store))[ids[1]]
    assert row["display_name"] == "Mickey Mouse (v12)" and row["source_version"] == "12"
    assert row["changed_at"] > row["first_seen_at"]


async def test_a_user_gone_upstream_is_deleted_once_and_restored_when_back(
    store, zitadel, make_config, engine_for
):
    ids = zitadel.seed(5)
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    gone = zitadel.users.pop(ids[2])

    report = await sync_all(engine)
    assert report.counts["deleted"] == 1
    [ev] = await events(store, "user.deleted")
    assert ev["payload"]["before"]["user_id"] == ids[2] and ev["payload"]["after"] is None
    row = (await mirror(store))[ids[2]]
    assert row["deleted_at"] is not None
    assert row["username"] == "donald.mouse.2"  # the last known state is kept

    # still gone: no second deletion event
    await sync_all(engine)
    assert len(await events(store, "user.deleted")) == 1

    zitadel.users[ids[2]] = gone
    report = await sync_all(engine)
    assert report.counts["restored"] == 1
    [ev] = await events(store, "user.restored")
    assert ev["payload"]["after"]["user_id"] == ids[2]
    assert (await mirror(store))[ids[2]]["deleted_at"] is None


async def test_a_404_for_a_user_never_mirrored_emits_nothing(store, zitadel, make_config, engine_for):
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ["999"])
    report = await engine.sync("zitadel")
    assert report.counts["not_found"] == 1
    assert await events(store) == []
    assert await mirror(store) == {}


async def test_ignored_fields_never_cause_events(store, zitadel, make_config, engine_for):
    ids = zitadel.seed(3)
    ignore = ["user.human.passwordChanged", "updated_at", "source_version", "details", "user.details"]
    engine = await engine_for(make_config(zitadel, ignore_fields=ignore))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    for uid in ids:
        user = zitadel.users[uid]["user"]
        user["details"]["changeDate"] = zitadel.users[uid]["details"]["changeDate"] = "2030-01-01T00:00:00Z"
        user["details"]["sequence"] = zitadel.users[uid]["details"]["sequence"] = "999"
        if "human" in user:
            user["human"]["passwordChanged"] = "2030-01-01T00:00:00Z"

    report = await sync_all(engine)
    assert report.counts["unchanged"] == 3
    assert len(await events(store)) == 3
    # a real change alongside still counts
    zitadel.users[ids[0]]["user"]["username"] = "renamed"
    report = await sync_all(engine)
    assert report.counts["updated"] == 1


async def test_a_failure_inside_the_write_leaves_no_event_and_no_mirror_row(
    store, zitadel, make_config, engine_for
):
    """The target bookkeeping is written last, by the same statement as the
    events and the mirror rows: make it fail, and nothing of the batch stays."""
    ids = zitadel.seed(10)
    engine = await engine_for(make_config(zitadel, concurrency=4))
    await store.add_targets("zitadel", ids)
    await store.pool.execute(
        """
        CREATE FUNCTION syncd.test_boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected failure in the target bookkeeping'; END $$;
        CREATE TRIGGER test_boom BEFORE UPDATE OF last_status ON syncd.targets
            FOR EACH ROW WHEN (NEW.last_status = 'created') EXECUTE FUNCTION syncd.test_boom();
        """
    )
    try:
        with pytest.raises(asyncpg.RaiseError, match="injected"):
            await engine.sync("zitadel")
        assert await events(store) == []
        assert await mirror(store) == {}
        run = await store.pool.fetchrow("SELECT status, error, created FROM syncd.sync_runs")
        assert run["status"] == "failed" and "injected" in run["error"]
        assert run["created"] == 0  # counted once written, and nothing was
    finally:
        await store.pool.execute("DROP TRIGGER test_boom ON syncd.targets; DROP FUNCTION syncd.test_boom()")

    report = await sync_all(engine)
    assert report.counts["created"] == 10
    # every event corresponds to exactly one mirror change
    evs = await events(store)
    assert sorted(e["payload"]["user_id"] for e in evs) == sorted(ids)
    assert set(await mirror(store)) == set(ids)


async def test_writing_the_same_change_twice_inserts_one_event_and_one_mirror_write(
    store, zitadel, make_config, engine_for
):
    """Two writers of one change compute the same event id; only one gets in.
    (Here b took the lease over after a wrote, as after a's lease ran out.)"""
    ids = zitadel.seed(3)
    cfg = make_config(zitadel)
    a = await engine_for(cfg, replica="a")
    b = await engine_for(cfg, replica="b")
    await store.add_targets("zitadel", ids)
    rt = a.runtime("zitadel")
    leased = await store.lease_due("zitadel", "a", 60, 100)
    outcomes = await fetch_batch(rt, leased)
    plan_a = await plan_outcomes(store, rt, a.config.sync, outcomes)
    plan_b = await plan_outcomes(store, b.runtime("zitadel"), b.config.sync, outcomes)
    changes_a, done_a, changes_b, done_b = plan_a.changes, plan_a.targets, plan_b.changes, plan_b.targets
    assert changes_a.event_ids == changes_b.event_ids

    written_a = await store.write_batch("zitadel", "a", changes_a, done_a)
    await store.pool.execute("UPDATE syncd.targets SET leased_by = 'b'")
    written_b = await store.write_batch("zitadel", "b", changes_b, done_b)
    assert (written_a.events, written_b.events) == (3, 0)
    assert len(await events(store)) == 3


async def test_a_mirror_rebuilt_from_scratch_is_written_again(store, zitadel, make_config, engine_for):
    """An admin empties the mirror and adds the targets again while the old
    creation events are still in the outbox: the users are created again
    (new events), not reported created and silently skipped."""
    ids = zitadel.seed(3)
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    await sync_all(engine)
    await store.pool.execute("DELETE FROM syncd.users; DELETE FROM syncd.targets")
    await store.add_targets("zitadel", ids)
    report = await sync_all(engine)
    assert report.counts["created"] == 3
    assert set(await mirror(store)) == set(ids)
    assert len(await events(store, "user.created")) == 6


async def test_a_writer_whose_lease_was_taken_over_writes_nothing(store, zitadel, make_config, engine_for):
    """A replica that stalled past its lease (a paused VM) must not put its old
    version back over what the replica that took the lease over wrote since;
    the mirror, the outbox and the next pass stay with the newer version."""
    ids = zitadel.seed(1)
    cfg = make_config(zitadel)
    a = await engine_for(cfg, replica="a")
    b = await engine_for(cfg, replica="b")
    await store.add_targets("zitadel", ids)
    await sync_all(a)
    zitadel.modify(ids[0])  # v2
    await store.make_due("zitadel", None)
    # a leases and fetches v2, then stalls past its lease
    leased = await store.lease_due("zitadel", "a", 60, 100)
    outcomes = await fetch_batch(a.runtime("zitadel"), leased)
    stale_plan = await plan_outcomes(store, a.runtime("zitadel"), a.config.sync, outcomes)
    stale, stale_done = stale_plan.changes, stale_plan.targets
    await store.pool.execute("UPDATE syncd.targets SET lease_expires_at = now() - interval '1 second'")
    zitadel.modify(ids[0])  # v3, which b syncs
    assert (await b.sync("zitadel")).counts["updated"] == 1
    newest = (await mirror(store))[ids[0]]
    assert (await store.write_batch("zitadel", "a", stale, stale_done)).events == 0
    assert (await mirror(store))[ids[0]] == newest
    assert [e["type"] for e in await events(store)].count("user.updated") == 1


async def test_outbox_inserts_notify_listeners(store, zitadel, make_config, engine_for):
    ids = zitadel.seed(4)
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    got: list[str] = []
    async with store.listen({"syncd_outbox": got.append}):
        await engine.sync("zitadel")
        await wait_for(lambda: got)
    assert sum(int(p) for p in got) == 4


async def test_config_user_ids_become_targets(store, zitadel, make_config, engine_for):
    ids = zitadel.seed(3)
    engine = await engine_for(make_config(zitadel, user_ids=ids[:2]))
    await engine.register_config_targets()
    report = await engine.sync("zitadel")
    assert report.counts["created"] == 2


async def test_every_pass_leaves_a_run_row(store, zitadel, make_config, engine_for):
    ids = zitadel.seed(3)
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel", trigger="resync")
    await engine.sync("zitadel", trigger="schedule")
    runs = await store.pool.fetch("SELECT * FROM syncd.sync_runs ORDER BY id")
    assert [(r["trigger"], r["status"], r["created"]) for r in runs] == [
        ("resync", "ok", 3),
        ("schedule", "ok", 0),
    ]
    assert all(r["finished_at"] is not None for r in runs)


async def test_a_run_left_running_by_a_killed_replica_is_marked_abandoned(
    store, zitadel, make_config, engine_for, logs
):
    """A replica killed mid-pass can't finish its sync_runs row; the next pass
    of the provider marks it abandoned once it has been silent for two of its
    own leases. It leaves alone a live replica's run, one whose replica has a
    longer lease than the observer's, and one of an older syncd that sets no
    deadline (a rolling upgrade)."""
    ids = zitadel.seed(3)
    engine = await engine_for(make_config(zitadel, sync={"lease": "60s"}))
    await store.add_targets("zitadel", ids)
    await store.pool.execute(
        "INSERT INTO syncd.sync_runs (provider, trigger, replica, started_at, heartbeat_at, alive_until)"
        " VALUES ('zitadel', 'schedule', 'killed-1', now() - interval '1 hour',"
        "         now() - interval '50 minutes', now() - interval '48 minutes'),"
        " ('zitadel', 'schedule', 'alive-1', now() - interval '1 hour',"
        "  now() - interval '30 seconds', now() + interval '90 seconds'),"
        # lease 10 min: its last heartbeat is older than two of the observer's leases
        " ('zitadel', 'schedule', 'long-lease-1', now() - interval '1 hour',"
        "  now() - interval '3 minutes', now() + interval '17 minutes'),"
        " ('zitadel', 'schedule', 'older-syncd-1', now() - interval '1 hour', now() - interval '1 hour', NULL)"
    )
    await engine.sync("zitadel")
    runs = {r["replica"]: r for r in await store.pool.fetch("SELECT * FROM syncd.sync_runs")}
    assert runs["killed-1"]["status"] == "abandoned"
    assert runs["killed-1"]["finished_at"] == runs["killed-1"]["heartbeat_at"]
    assert "stopped without finishing" in runs["killed-1"]["error"]
    for live in ("alive-1", "long-lease-1", "older-syncd-1"):
        assert runs[live]["status"] == "running", live
    assert [e["replica"] for e in logs if e["event"] == "sync.run_abandoned"] == ["killed-1"]


async def test_a_long_pass_keeps_its_heartbeat_fresh(store, zitadel, make_config, engine_for):
    ids = zitadel.seed(15)
    zitadel.latency = 0.1  # one request at a time: the pass takes 1.5 s
    engine = await engine_for(make_config(zitadel, concurrency=1, sync={"lease": "1s"}))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    run = await store.pool.fetchrow(
        "SELECT started_at, heartbeat_at, finished_at, status FROM syncd.sync_runs"
    )
    assert run["status"] == "ok"
    # renewed every third of a second while it ran, so never silent for two leases
    assert run["heartbeat_at"] - run["started_at"] > timedelta(seconds=0.3)


async def test_a_failed_lease_renewal_does_not_stop_the_renewals(
    store, zitadel, make_config, engine_for, logs
):
    """A renewal that fails (here: the first two, by an injected error) is
    logged and tried again; the pass keeps its leases and its heartbeat, and
    finishes normally."""
    ids = zitadel.seed(15)
    zitadel.latency = 0.1  # 1.5 s: renewals at 1/3 s and 2/3 s fail, the one at 1 s goes in
    engine = await engine_for(make_config(zitadel, concurrency=1, sync={"lease": "1s"}))
    await store.add_targets("zitadel", ids)
    await store.pool.execute(
        """
        CREATE SEQUENCE syncd.test_renewals;
        CREATE FUNCTION syncd.test_fail_renewal() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('syncd.test_renewals') <= 2 THEN
                RAISE EXCEPTION 'injected renewal failure';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_fail_renewal BEFORE UPDATE ON syncd.sync_runs FOR EACH ROW
            WHEN (NEW.heartbeat_at IS DISTINCT FROM OLD.heartbeat_at)
            EXECUTE FUNCTION syncd.test_fail_renewal();
        """
    )
    report = await engine.sync("zitadel")
    assert report.status == "ok" and report.counts["created"] == 15
    failures = [e for e in logs if e["event"] == "sync.lease_renewal_failed"]
    assert len(failures) == 2 and "injected renewal failure" in failures[0]["error"]
    run = await store.pool.fetchrow("SELECT started_at, heartbeat_at, alive_until FROM syncd.sync_runs")
    assert run["heartbeat_at"] - run["started_at"] > timedelta(seconds=0.3)  # renewed after the failures
    assert run["alive_until"] >= run["heartbeat_at"] + timedelta(seconds=0.6)


async def test_dry_run_reports_the_patch_and_writes_nothing(store, zitadel, make_config, engine_for):
    ids = zitadel.seed(4)
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    zitadel.modify(ids[0])
    before_targets = await store.pool.fetch("SELECT *, xmin::text AS v FROM syncd.targets ORDER BY user_id")
    n_runs = await store.pool.fetchval("SELECT count(*) FROM syncd.sync_runs")

    report = await engine.dry_run("zitadel")

    assert report.counts["updated"] == 1 and report.counts["unchanged"] == 3
    [(uid, change, ops)] = report.diffs
    assert uid == ids[0] and change == "updated"
    assert {"op": "replace", "path": "/display_name", "value": "Minnie Mouse (v11)"} in ops
    assert len(await events(store)) == 4
    assert (
        await store.pool.fetch("SELECT *, xmin::text AS v FROM syncd.targets ORDER BY user_id")
        == before_targets
    )
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.sync_runs") == n_runs


async def test_a_paged_dry_run_checks_every_given_id_once_whatever_the_collation(
    icu_store, zitadel, make_config
):
    """The pages of a dry run with given ids follow one order: under en-US,
    where "a" < "B" but byte order puts "B" first, a page boundary once
    skipped "a" (the ids were sorted as bytes and compared in the locale)."""
    ids = ["B", "a", "c", "A"]
    async with Engine(icu_store, make_config(zitadel, sync={"batch_size": 1})) as engine:
        report = await engine.dry_run("zitadel", only=ids)
    assert report.counts["not_found"] == 4
    asked = [r.path.rsplit("/", 1)[-1] for r in zitadel.user_requests()]
    assert sorted(asked) == sorted(ids)


async def test_deletion_needs_two_404s_a_minute_apart_by_default(store, zitadel, make_config, engine_for):
    ids = zitadel.seed(20)
    engine = await engine_for(
        make_config(zitadel, sync={"delete_confirmations": 2, "delete_confirm_after": "1m"})
    )
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    del zitadel.users[ids[0]]

    report = await sync_all(engine)
    assert report.counts["not_found"] == 1 and report.counts["deleted"] == 0
    t = await store.pool.fetchrow("SELECT * FROM syncd.targets WHERE user_id = $1", ids[0])
    assert t["not_found_count"] == 1 and t["last_status"] == "not_found_unconfirmed"
    # a second 404 within the minute does not confirm it yet
    report = await sync_all(engine)
    assert report.counts["deleted"] == 0
    # ... a 404 a minute after the first does
    await store.pool.execute("UPDATE syncd.targets SET not_found_since = now() - interval '61 seconds'")
    report = await sync_all(engine)
    assert report.counts["deleted"] == 1


async def test_a_user_404_once_then_back_is_never_deleted(store, zitadel, make_config, engine_for):
    """ZITADEL's projection can answer 404 right after a user is created."""
    ids = zitadel.seed(20)
    engine = await engine_for(make_config(zitadel, sync={"delete_confirmations": 2}))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    doc = zitadel.users.pop(ids[0])
    await sync_all(engine)
    zitadel.users[ids[0]] = doc
    await sync_all(engine)
    await store.pool.execute("UPDATE syncd.targets SET not_found_since = now() - interval '1 hour'")
    del zitadel.users[ids[0]]
    report = await sync_all(engine)
    assert report.counts["deleted"] == 0
    assert await events(store, "user.deleted") == []


async def test_editing_ignore_fields_later_emits_no_event_wave(store, zitadel, make_config, engine_for):
    """Changing ignore_fields changes every hash, not any user: no events."""
    ids = zitadel.seed(5)
    first = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    await first.sync("zitadel")
    second = await engine_for(make_config(zitadel, ignore_fields=["user.loginNames"]))
    await store.make_due("zitadel", None)
    report = await second.sync("zitadel")
    assert report.counts["unchanged"] == 5 and report.counts["updated"] == 0
    assert len(await events(store)) == 5
    await store.make_due("zitadel", None)
    report = await second.sync("zitadel")  # and the new hashes stick
    assert report.counts["unchanged"] == 5


async def test_editing_ignore_fields_emits_no_events_for_changes_it_still_ignores(
    store, zitadel, make_config, engine_for
):
    """Fields that change on every read are ignored; when the operator then
    ignores one more field, the ignored changes that piled up meanwhile are
    still no reason for an event."""
    ids = zitadel.seed(4)
    ignore = ["updated_at", "source_version", "raw.user.details", "raw.details"]
    first = await engine_for(make_config(zitadel, ignore_fields=ignore))
    await store.add_targets("zitadel", ids)
    await first.sync("zitadel")
    for uid in ids:  # only what is ignored changes
        zitadel.users[uid]["details"]["sequence"] = "999"
        zitadel.users[uid]["user"]["details"]["sequence"] = "999"
    second = await engine_for(make_config(zitadel, ignore_fields=[*ignore, "raw.user.loginNames"]))
    await store.make_due("zitadel", None)
    report = await second.sync("zitadel")
    assert report.counts["updated"] == 0 and report.counts["unchanged"] == 4
    assert len(await events(store)) == 4  # the creations


async def test_a_nul_character_from_the_provider_does_not_block_the_batch(
    store, zitadel, make_config, engine_for, logs
):
    """PostgreSQL stores no NUL character; one user whose name holds one is
    written with U+FFFD in its place, and the rest of the batch with it."""
    ids = zitadel.seed(5)
    zitadel.users[ids[2]]["user"]["human"]["profile"]["displayName"] = "Bad\x00Name"
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    report = await engine.sync("zitadel")
    assert report.status == "ok" and report.counts["created"] == 5
    assert (await mirror(store))[ids[2]]["display_name"] == "Bad\ufffdName"
    assert [e["user_id"] for e in logs if e["event"] == "user.nul_replaced"] == [ids[2]]


async def test_a_deactivated_user_is_an_update_not_a_deletion(store, zitadel, make_config, engine_for):
    ids = zitadel.seed(3)
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    zitadel.users[ids[0]]["user"]["state"] = "USER_STATE_INACTIVE"

    report = await sync_all(engine)

    assert report.counts["updated"] == 1 and report.counts["deleted"] == 0
    [ev] = await events(store, "user.updated")
    assert {"op": "replace", "path": "/active", "value": False} in ev["payload"]["patch"]
    row = (await mirror(store))[ids[0]]
    assert row["active"] is False and row["state"] == "USER_STATE_INACTIVE" and row["deleted_at"] is None


async def test_the_same_body_again_short_circuits_but_never_hides_a_change(
    store, zitadel, make_config, engine_for
):
    """Identical bytes skip parsing and mapping; anything that could change the
    record (the body, the mirror row, redact settings) goes the full way."""
    ids = zitadel.seed(4)
    engine = await engine_for(make_config(zitadel))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")
    hashes = await store.pool.fetch("SELECT body_hash FROM syncd.targets")
    assert all(h["body_hash"] for h in hashes)

    report = await sync_all(engine)
    assert report.counts["unchanged"] == 4 and len(await events(store)) == 4

    zitadel.modify(ids[0])  # a changed body is diffed
    await store.pool.execute("DELETE FROM syncd.users WHERE user_id = $1", ids[1])  # a vanished mirror row
    report = await sync_all(engine)
    assert report.counts["updated"] == 1 and report.counts["created"] == 1

    # the same bodies, but a new redact setting: the mirror must lose the field
    redacting = await engine_for(make_config(zitadel, redact_fields=["loginNames"]))
    await store.make_due("zitadel", None)
    report = await redacting.sync("zitadel")
    assert report.counts["updated"] == 4, report.counts
    raws = await store.pool.fetch("SELECT raw FROM syncd.users")
    assert all("loginNames" not in r["raw"]["user"] for r in raws)


async def test_a_resync_after_the_mirror_was_emptied_does_not_rescan_it_per_user(
    db_url, store, zitadel, make_config
):
    """Batch statements are planned for the tables as they are: a plan cached
    while the mirror was empty (after a TRUNCATE) must not go on scanning the
    whole, growing mirror for every user of every batch."""
    n = 2000
    ids = zitadel.seed(n)
    await store.add_targets("zitadel", ids)
    cfg = make_config(zitadel, concurrency=16, sync={"batch_size": 50})
    one = await Store.connect(db_url, min_size=1, max_size=1)  # one connection: one plan cache
    pid = await one.pool.fetchval("SELECT pg_backend_pid()")
    try:
        async with Engine(one, cfg, replica="solo") as engine:
            assert (await sync_all(engine)).counts["created"] == n
            await one.pool.execute("TRUNCATE syncd.users, syncd.outbox")
            await one.pool.execute("VACUUM ANALYZE syncd.users")
            await one.make_due("zitadel", None)
            before = await rows_scanned(store, "users")
            assert (await sync_all(engine)).counts["created"] == n
    finally:
        await one.close()
    # a backend reports its table statistics when it exits
    await wait_for(lambda: backend_gone(store, pid), timeout=10)
    scanned = await rows_scanned(store, "users") - before
    # planned per batch, mirror rows are looked up by key (0 rows scanned here); the
    # generic plan cached while the mirror was empty scanned it for every leased
    # user: about 1,900,000 rows for these 2,000 users
    assert scanned < 5 * n, scanned


async def rows_scanned(store: Store, table: str) -> int:
    """Rows read by sequential scans of a syncd table so far (by exited backends too)."""
    return int(
        await store.pool.fetchval(
            "SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables WHERE schemaname = 'syncd' AND relname = $1",
            table,
        )
    )


async def backend_gone(store: Store, pid: int) -> bool:
    return not await store.pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)


def test_event_ids_are_the_uuid5_of_the_change():
    """Event ids are part of the outbox contract (a re-run after a crash, maybe
    by a newer syncd, must compute the same ones): pinned to RFC 4122 uuid5."""
    import uuid
    from datetime import UTC, datetime

    from syncd.model.events import EVENT_NAMESPACE, event_id

    marker = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    name = "\x1f".join(["zitadel", "42", "updated", "a" * 64, "b" * 64, marker.isoformat()])
    assert event_id("zitadel", "42", "updated", "a" * 64, "b" * 64, marker) == str(
        uuid.uuid5(EVENT_NAMESPACE, name)
    )
    assert event_id("zitadel", "42", "created", None, "b" * 64, None) == str(
        uuid.uuid5(EVENT_NAMESPACE, "\x1f".join(["zitadel", "42", "created", "", "b" * 64, ""]))
    )


async def test_leasing_a_batch_does_not_scan_every_target(db_url, store, zitadel, make_config):
    """Leasing reads the due index and updates the rows it locked by their
    tuple ids: a batch costs the same with 2,000 targets or 2 million. (Joined
    back by key, PostgreSQL chose to hash the whole targets table for every
    batch: a pass over N targets read N²/batch_size rows.)"""
    n = 2000
    ids = zitadel.seed(n)
    await store.add_targets("zitadel", ids)
    await store.pool.execute("VACUUM ANALYZE syncd.targets")
    cfg = make_config(zitadel, concurrency=16, sync={"batch_size": 50})
    one = await Store.connect(db_url, min_size=1, max_size=1)
    pid = await one.pool.fetchval("SELECT pg_backend_pid()")
    try:
        async with Engine(one, cfg, replica="solo") as engine:
            before = await rows_scanned(store, "targets")
            assert (await engine.sync("zitadel", trigger="resync")).counts["created"] == n
    finally:
        await one.close()
    await wait_for(lambda: backend_gone(store, pid), timeout=10)
    scanned = await rows_scanned(store, "targets") - before
    # 40 batches; hashing the table per batch read 40 x 2,000 rows
    assert scanned < 5 * n, scanned


class ExplainingStore(Store):
    """A real store that, before each batch write, runs the same statement under
    EXPLAIN ANALYZE in a transaction it rolls back, and keeps the plans."""

    plans: list[dict[str, Any]]

    async def write_batch(self, provider, owner, changes, done):
        async with self.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                plan = await conn.fetchval(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + self.q["write_batch"],
                    provider,
                    owner,
                    changes.param(),
                    done.param(),
                    changes.refresh_param(),
                )
            finally:
                await tx.rollback()
        self.plans.append(plan[0]["Plan"])  # the json codec has decoded it
        return await super().write_batch(provider, owner, changes, done)


def rows_handled(node: dict[str, Any]) -> int:
    """Rows every node of a plan produced or threw away, all loops counted."""
    own = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
    own += node.get("Rows Removed by Join Filter", 0) + node.get("Rows Removed by Filter", 0)
    return own + sum(rows_handled(child) for child in node.get("Plans", ()))


async def test_a_batch_write_does_work_in_proportion_to_the_batch(db_url, zitadel, make_config):
    """Writing a batch of created users touches each row a bounded number of
    times. (The mirror upsert once joined the batch's rows to the inserted
    events with a nested loop: 1,000 x 1,000 comparisons per batch, half of
    PostgreSQL's time in a first sync.)"""
    n = 400
    store = await ExplainingStore.connect(db_url, min_size=1, max_size=4)
    store.plans = []
    try:
        await store.add_targets("zitadel", zitadel.seed(n))
        # statistics taken with nothing leased, as a daemon's autovacuum sees the table
        await store.pool.execute("VACUUM ANALYZE syncd.targets")
        cfg = make_config(zitadel, concurrency=16, sync={"batch_size": n})
        async with Engine(store, cfg, replica="solo") as engine:
            assert (await engine.sync("zitadel", trigger="resync")).counts["created"] == n
    finally:
        await store.close()
    [plan] = store.plans
    # about 20 rows per user in all (events, mirror rows, targets, the CTEs that
    # feed them); the nested loop alone was n x n = 160,000
    assert rows_handled(plan) < 60 * n, rows_handled(plan)


async def test_a_crashing_fetch_worker_leaves_no_request_in_flight(
    store, zitadel, make_config, engine_for, monkeypatch
):
    """A bug in one user's processing (errors are outcomes; this is not one)
    fails the batch, and by the time it does, the batch's other requests are
    cancelled and their gate slots given back: nothing is left running into
    the next batch or the shutdown."""
    ids = zitadel.seed(2)
    engine = await engine_for(make_config(zitadel, concurrency=8))
    rt = engine.runtime("zitadel")
    real = fetch_mod.record_of

    def buggy(rt, identity):
        if identity.user_id == ids[0]:
            raise RuntimeError("a bug in mapping")
        return real(rt, identity)

    monkeypatch.setattr(fetch_mod, "record_of", buggy)
    zitadel.inject("slow", delay=1, only_path=ids[1])  # still waiting on the fake when ids[0] crashes
    targets = [{"user_id": uid, "content_hash": None, "deleted_at": None} for uid in ids[:2]]
    with pytest.raises(RuntimeError, match="a bug in mapping"):
        await fetch_batch(rt, targets)
    assert rt.gate.in_flight == 0
