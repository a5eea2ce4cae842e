"""No event storms from cosmetic changes (issue #17), against the fake
providers and a real PostgreSQL: a new ``meta.location`` on every user (a
host-name change upstream), a new timestamp format, ZITADEL's change markers
and ``ignore_fields`` rewrite the mirror row quietly (its raw kept current,
``changed_at`` left) and emit nothing; a real change beside them is one
event; ``representation_events = true`` brings the events back; a lower-case
SCIM server maps like any other; the enterprise columns are filled, and
migration 016 fills them for rows mirrored before it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from syncd import metrics
from syncd.model.diff import record_json_and_hash
from syncd.model.identity import Identity
from syncd.store import ChangeSet, TargetUpdates
from syncd.testing.dialects.scim import ENTERPRISE
from syncd.testing.fake import FakeProvider
from tests.integration.conftest import FAST

N = 20
MIRROR = "SELECT user_id, raw, content_hash, synced_at, changed_at FROM syncd.users ORDER BY user_id"
SQL = Path(__file__).parents[2] / "sql"


async def synced(f: FakeProvider, store, make_config, engine_for, **over: Any) -> tuple[list[str], Any]:
    ids = f.seed(N)
    await store.add_targets("corp", ids)
    engine = await engine_for(make_config(("corp", f), **{**FAST, **over}))
    assert (await engine.sync("corp")).counts["created"] == N
    return ids, engine


async def mirror(store) -> dict[str, dict[str, Any]]:
    return {r["user_id"]: dict(r) for r in await store.pool.fetch(MIRROR)}


async def event_count(store) -> int:
    return int(await store.pool.fetchval("SELECT count(*) FROM syncd.outbox"))


async def resync(store, engine) -> Any:
    await store.make_due("corp", None)
    return await engine.sync("corp")


def move_host(f: FakeProvider) -> None:
    """Every user's meta.location on a new host, and its timestamps in another format."""
    for doc in f.users.values():
        meta = doc["meta"]
        meta["location"] = meta["location"].replace("https://", "https://new-host.")
        meta["lastModified"] = meta["lastModified"].replace(".605Z", ".605000+00:00")
        meta["created"] = meta["created"].replace("Z", "+00:00")


@pytest.mark.parametrize(
    ("provider", "refresh"), [("scim", "by_id"), ("webex", "by_id"), ("scim", "batch")], indirect=["provider"]
)
async def test_a_new_meta_location_on_every_user_is_no_event_and_refreshes_raw(
    provider, refresh, store, make_config, engine_for
):
    ids, engine = await synced(provider, store, make_config, engine_for, refresh=refresh)
    before, events = await mirror(store), await event_count(store)
    move_host(provider)

    rewrites = metrics.QUIET_REWRITES.labels("corp")._value.get()
    report = await resync(store, engine)

    assert report.counts["unchanged"] == N and report.counts["updated"] == 0
    assert await event_count(store) == events  # not one user.updated
    assert metrics.QUIET_REWRITES.labels("corp")._value.get() - rewrites == N
    after = await mirror(store)
    for uid in ids:
        assert after[uid]["raw"]["meta"] == provider.users[uid]["meta"]  # raw is current
        assert after[uid]["changed_at"] == before[uid]["changed_at"]  # nothing a reader acts on changed
        assert after[uid]["synced_at"] > before[uid]["synced_at"]
    # the next pass finds every row as the provider answers it: nothing to write
    assert (await resync(store, engine)).counts["unchanged"] == N
    assert await mirror(store) == after


async def test_a_real_change_beside_a_new_location_is_one_event_per_changed_user(
    provider, store, make_config, engine_for
):
    ids, engine = await synced(provider, store, make_config, engine_for)
    events = await event_count(store)
    move_host(provider)
    for uid in ids[:3]:
        provider.modify(uid)

    report = await resync(store, engine)

    assert (report.counts["updated"], report.counts["unchanged"]) == (3, N - 3)
    rows = await store.pool.fetch(
        "SELECT aggregateid, type, payload FROM syncd.outbox ORDER BY seq OFFSET $1", events
    )
    assert sorted(r["aggregateid"] for r in rows) == sorted(f"corp:{uid}" for uid in ids[:3])
    paths = {op["path"] for op in rows[0]["payload"]["patch"]}
    assert "/display_name" in paths and "/raw/meta/location" in paths  # the patch shows every difference


async def test_representation_events_true_makes_them_events(provider, store, make_config, engine_for):
    _, engine = await synced(provider, store, make_config, engine_for, representation_events=True)
    events = await event_count(store)
    move_host(provider)
    assert (await resync(store, engine)).counts["updated"] == N
    assert await event_count(store) == events + N


@pytest.mark.parametrize("provider", ["zitadel"], indirect=True)
async def test_zitadel_change_markers_alone_are_no_event(provider, store, make_config, engine_for):
    ids, engine = await synced(provider, store, make_config, engine_for)
    events = await event_count(store)
    for doc in provider.users.values():
        for details in (doc["details"], doc["user"]["details"]):
            details["sequence"] = str(int(details["sequence"]) + 100)
            details["changeDate"] = "2026-06-01T00:00:00.000000001Z"

    assert (await resync(store, engine)).counts["unchanged"] == N
    assert await event_count(store) == events
    after = await mirror(store)
    assert {after[uid]["raw"]["details"]["sequence"] for uid in ids} == {
        provider.users[uid]["details"]["sequence"] for uid in ids
    }


@pytest.mark.parametrize("provider", ["fortanix"], indirect=True)
async def test_an_ignored_field_is_no_event_and_no_longer_leaves_raw_stale(
    provider, store, make_config, engine_for
):
    ids, engine = await synced(provider, store, make_config, engine_for)
    events = await event_count(store)
    for doc in provider.users.values():
        doc["last_logged_in_at"] = "20261207T150000Z"  # Fortanix ignores it by default

    assert (await resync(store, engine)).counts["unchanged"] == N
    assert await event_count(store) == events
    after = await mirror(store)
    assert {after[uid]["raw"]["last_logged_in_at"] for uid in ids} == {"20261207T150000Z"}


def recased(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.lower(): recased(v) for k, v in value.items()}
    if isinstance(value, list):
        return [recased(v) for v in value]
    return value


async def test_a_server_with_lower_case_attribute_names_is_mirrored_like_any_other(
    provider, store, make_config, engine_for
):
    ids = provider.seed(N)
    canonical = {uid: copy.deepcopy(doc) for uid, doc in provider.users.items()}
    for uid in ids:
        provider.users[uid] = recased(provider.users[uid])
    await store.add_targets("corp", ids)
    engine = await engine_for(make_config(("corp", provider), **FAST))
    assert (await engine.sync("corp")).counts["created"] == N
    rows = {
        r["user_id"]: r
        for r in await store.pool.fetch(
            "SELECT user_id, username, given_name, email, active, employee_number, department FROM syncd.users"
        )
    }
    for uid in ids:
        doc = canonical[uid]
        work = next(e["value"] for e in doc["emails"] if e.get("primary"))
        assert (rows[uid]["username"], rows[uid]["given_name"], rows[uid]["email"]) == (
            doc["userName"],
            doc["name"]["givenName"],
            work,
        )
        assert rows[uid]["active"] is doc["active"]
        assert rows[uid]["employee_number"] == doc[ENTERPRISE]["employeeNumber"]


COLUMNS = "employee_number, department, cost_center, organization, division, manager_id"


async def enterprise_columns(store) -> dict[str, dict[str, Any]]:
    return {
        r["user_id"]: dict(r) for r in await store.pool.fetch(f"SELECT user_id, {COLUMNS} FROM syncd.users")
    }


def odd_values(f: FakeProvider, ids: list[str]) -> None:
    """Values a server may send where the mapping and 016's SQL could part:
    empty strings, booleans, numbers, objects, nulls, a manager as a bare id;
    ZITADEL: an owner only in the answer's details, or in neither."""
    if f.dialect.type == "zitadel":
        del f.users[ids[0]]["user"]["details"]["resourceOwner"]  # the user's details win: none
        f.users[ids[1]]["user"]["details"] = {}  # empty: the answer's details are read
        f.users[ids[2]]["details"]["resourceOwner"] = ""
        f.users[ids[2]]["user"]["details"]["resourceOwner"] = 284761535123456789  # a number
        f.users[ids[3]]["user"]["details"]["resourceOwner"] = True
        return
    for uid, (key, value) in zip(
        ids,
        [
            ("department", ""),
            ("division", True),
            ("manager", "m-plain"),
            ("employeeNumber", 42),
            ("costCenter", {"x": 1}),
            ("organization", None),
            ("manager", {"value": ""}),
            ("division", 1.5),
        ],
        strict=False,
    ):
        f.users[uid][ENTERPRISE][key] = value


@pytest.mark.parametrize("provider", ["webex", "zitadel"], indirect=True)
async def test_migration_016_fills_old_rows_as_syncd_maps_them_so_no_event_follows(
    provider, store, make_config, engine_for
):
    ids = provider.seed(N)
    odd_values(provider, ids)
    await store.add_targets("corp", ids)
    engine = await engine_for(make_config(("corp", provider), **FAST))
    assert (await engine.sync("corp")).counts["created"] == N
    filled = await enterprise_columns(store)
    if provider.dialect.type == "webex":
        ext = provider.users[ids[-1]][ENTERPRISE]
        assert filled[ids[-1]] == {
            "user_id": ids[-1],
            "employee_number": ext["employeeNumber"],
            "department": ext["department"],
            "cost_center": ext["costCenter"],
            "organization": ext.get("organization"),
            "division": ext.get("division"),
            "manager_id": ext["manager"]["value"],
        }
        assert [
            filled[u][c]
            for u, c in zip(ids, ["department", "division", "manager_id", "employee_number"], strict=False)
        ] == [
            None,
            None,
            "m-plain",
            "42",
        ]
    else:
        assert [filled[u]["organization"] for u in ids[:4]] == [
            None,
            "284761535123456789",
            "284761535123456789",
            None,
        ]
        assert filled[ids[-1]]["organization"] == provider.users[ids[-1]]["user"]["details"]["resourceOwner"]
    # rows as a release before 016 left them: no columns, a hash of the old record
    await store.pool.execute(
        f"ALTER TABLE syncd.users DROP COLUMN {COLUMNS.replace(', ', ', DROP COLUMN ')}; "
        "UPDATE syncd.users SET content_hash = 'pre-016'"
    )
    await store.pool.execute((SQL / "016_enterprise_columns.sql").read_text())
    assert await enterprise_columns(store) == filled
    events = await event_count(store)
    assert (await resync(store, engine)).counts["unchanged"] == N  # each row rewritten quietly once
    assert await event_count(store) == events


async def test_a_quiet_rewrite_never_overwrites_a_row_written_since_or_one_leased_elsewhere(
    provider, store, make_config, engine_for
):
    ids, _ = await synced(provider, store, make_config, engine_for)
    uid = ids[0]
    row = await store.pool.fetchrow("SELECT raw, content_hash FROM syncd.users WHERE user_id = $1", uid)
    stale, stale_hash = record_json_and_hash(Identity(user_id=uid, raw={"id": uid, "stale": True}))

    async def quiet_write(owner: str, replaces: str) -> int:
        """A quiet rewrite of ``uid`` by ``owner`` (leasing it first when
        ``owner`` is "me"), and the answer's fingerprint and ETag planned for it."""
        if owner == "me":
            await store.pool.execute("UPDATE syncd.targets SET leased_by = 'me' WHERE user_id = $1", uid)
        changes, updates = ChangeSet.empty(), TargetUpdates.empty()
        changes.refresh(uid, stale, stale_hash, replaces)
        updates.add(uid, "unchanged", next_in=900, body_hash="fingerprint", etag=('W/"9"', "scope"))
        return (await store.write_batch("corp", owner, changes, updates)).refreshed

    async def kept() -> tuple[Any, ...]:
        t = await store.pool.fetchrow("SELECT body_hash, etag FROM syncd.targets WHERE user_id = $1", uid)
        return (t["body_hash"], t["etag"])

    assert await quiet_write("me", "some-other-hash") == 0  # the row changed since it was planned
    # that answer was not written: its fingerprint and ETag are not kept (the next read maps it)
    assert await kept() == (None, None)
    assert await quiet_write("someone-else", row["content_hash"]) == 0  # the lease is not ours
    assert (
        await store.pool.fetchval("SELECT content_hash FROM syncd.users WHERE user_id = $1", uid)
        == row["content_hash"]
    )
    assert await quiet_write("me", row["content_hash"]) == 1
    assert await kept() == ("fingerprint", 'W/"9"')
    now = await store.pool.fetchrow("SELECT raw, content_hash FROM syncd.users WHERE user_id = $1", uid)
    assert (now["raw"], now["content_hash"]) == ({"id": uid, "stale": True}, stale_hash)
