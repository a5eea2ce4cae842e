"""The schema comes only from sql/, applied idempotently and safely in parallel."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from syncd.errors import SyncdError
from syncd.store import Store, migrations, migrator, queries

EXPECTED_COLUMNS = {
    "users": {
        "provider",
        "user_id",
        "username",
        "display_name",
        "given_name",
        "family_name",
        "email",
        "email_verified",
        "emails",
        "phone",
        "active",
        "state",
        "kind",
        "locale",
        "employee_number",
        "department",
        "cost_center",
        "organization",
        "division",
        "manager_id",
        "updated_at",
        "source_version",
        "raw",
        "content_hash",
        "first_seen_at",
        "synced_at",
        "changed_at",
        "deleted_at",
    },
    "outbox": {"id", "aggregatetype", "aggregateid", "type", "payload", "created_at", "seq", "processed_at"},
    "targets": {
        "provider",
        "user_id",
        "added_at",
        "next_sync_at",
        "leased_by",
        "lease_expires_at",
        "attempts",
        "last_synced_at",
        "last_status",
        "last_error",
        "not_found_count",
        "not_found_since",
    },
    "provider_state": {"provider", "paused_until", "pause_reason", "circuit", "updated_at"},
    "sync_runs": {
        "id",
        "heartbeat_at",
        "alive_until",
        "provider",
        "trigger",
        "replica",
        "started_at",
        "finished_at",
        "status",
        "fetched",
        "created",
        "updated",
        "deleted",
        "restored",
        "unchanged",
        "failed",
        "not_found",
        "held",
        "error",
    },
}


async def columns(conn: asyncpg.Connection) -> dict[str, set[str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'syncd'"
    )
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["table_name"], set()).add(r["column_name"])
    return out


async def test_applying_all_migrations_gives_the_schema_the_code_expects(empty_db_url):
    store = await Store.connect(empty_db_url)
    try:
        applied = await store.migrate()
        assert applied == [m.version for m in migrations()]
        async with store.pool.acquire() as conn:
            cols = await columns(conn)
            for table, expected in EXPECTED_COLUMNS.items():
                assert expected <= cols[table], table
            # every named query at least parses against the schema
            broken = {}
            for name, sql in queries().items():
                try:
                    await conn.prepare(sql)
                except asyncpg.PostgresError as exc:
                    broken[name] = str(exc)
            assert broken == {}
    finally:
        await store.close()


async def test_events_are_stored_without_per_row_trigger_or_pglz(empty_db_url):
    """What 005 changed for write speed: no trigger copying each inserted event,
    and event payloads left uncompressed where the server has no lz4."""
    store = await Store.connect(empty_db_url)
    try:
        await store.migrate()
        triggers = await store.pool.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'syncd.outbox'::regclass AND NOT tgisinternal"
        )
        assert triggers == 0
        method = await store.pool.fetchval(
            "SELECT attcompression::text FROM pg_attribute"
            " WHERE attrelid = 'syncd.outbox'::regclass AND attname = 'payload'"
        )
        options = await store.pool.fetchval(
            "SELECT reloptions FROM pg_class WHERE oid = 'syncd.outbox'::regclass"
        )
        if method == "l":
            assert not options
        else:
            assert options == ["toast_tuple_target=8160"]
    finally:
        await store.close()


async def test_identifiers_compare_as_bytes_whatever_the_database_collation(store):
    """009: provider names, user ids and aggregate ids are "C"-collated, so the
    B-trees they key compare bytes, not words through the C library's locale;
    and queries that pass them as plain text parameters still use the indexes."""
    rows = await store.pool.fetch(
        "SELECT c.relname, a.attname, co.collname FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_collation co ON co.oid = a.attcollation"
        " WHERE n.nspname = 'syncd' AND c.relkind = 'r' AND a.attname IN ('provider', 'user_id', 'aggregateid')"
    )
    assert {(r["relname"], r["attname"]) for r in rows} >= {
        ("users", "provider"),
        ("users", "user_id"),
        ("targets", "user_id"),
        ("outbox", "aggregateid"),
    }
    assert {r["collname"] for r in rows} == {"C"}
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # an unusable index would still not be used
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT 1 FROM syncd.users WHERE provider = $1 AND user_id = ANY($2::text[])",
            "p",
            ["a"],
        )
    assert "users_pkey" in str(plan)


async def schema_before(store: Store, version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema as a release before ``version`` left it: ``migrate`` with
    only the files older than ``version``."""
    old = [m for m in migrations() if m.version < version]
    with monkeypatch.context() as m:
        m.setattr(migrator, "migrations", lambda: old)
        await store.migrate()


async def test_a_migration_blocked_by_a_long_reader_fails_clearly_and_applies_nothing(
    empty_db_url, monkeypatch
):
    """An upgrade run while a downstream app reads the mirror in a long
    transaction: 009 can't lock syncd.users, so ``migrate`` gives up after its
    lock timeout with a message saying so (instead of queueing every reader and
    writer behind it), and applies nothing; run again once the read is done."""
    store = await Store.connect(empty_db_url)
    reader = await asyncpg.connect(empty_db_url)
    try:
        await schema_before(store, "009", monkeypatch)
        read = reader.transaction()
        await read.start()
        await reader.fetch("SELECT * FROM syncd.users")  # holds its lock until the transaction ends

        with pytest.raises(SyncdError, match=r"migration 009_identifier_collation could not lock") as err:
            await store.migrate(lock_timeout=0.2)
        assert "nothing was applied" in str(err.value)
        assert await store.pending_migrations() == [m.version for m in migrations() if m.version >= "009"]

        with pytest.raises(ValueError, match="wait forever"):  # PostgreSQL's lock_timeout 0
            await store.migrate(lock_timeout=0.0004)

        await read.rollback()
        assert "009_identifier_collation" in await store.migrate(lock_timeout=0.2)
        assert await store.pending_migrations() == []
    finally:
        await reader.close()
        await store.close()


async def test_a_migration_that_fails_names_itself_and_applies_nothing(empty_db_url, monkeypatch):
    """009 can't change the collation of a column a downstream view selects:
    the error says which migration failed and why, and the schema is as before."""
    store = await Store.connect(empty_db_url)
    try:
        await schema_before(store, "009", monkeypatch)
        await store.pool.execute("CREATE VIEW public.people AS SELECT user_id FROM syncd.users")
        with pytest.raises(SyncdError, match=r"migration 009_identifier_collation failed.*view") as err:
            await store.migrate()
        assert "nothing was applied" in str(err.value)
        assert "009_identifier_collation" in await store.pending_migrations()
        await store.pool.execute("DROP VIEW public.people")
        assert "009_identifier_collation" in await store.migrate()
    finally:
        await store.close()


async def test_migrate_twice_is_a_no_op(empty_db_url):
    store = await Store.connect(empty_db_url)
    try:
        assert await store.migrate()
        assert await store.migrate() == []
        assert await store.pending_migrations() == []
    finally:
        await store.close()


async def test_two_migrations_at_once_apply_each_file_exactly_once(empty_db_url):
    a = await Store.connect(empty_db_url)
    b = await Store.connect(empty_db_url)
    try:
        ra, rb = await asyncio.gather(a.migrate(), b.migrate())
        assert sorted(ra + rb) == [m.version for m in migrations()]
        n = await a.pool.fetchval("SELECT count(*) FROM syncd.schema_migrations")
        assert n == len(migrations())
    finally:
        await a.close()
        await b.close()


async def test_reader_role_can_read_the_mirror_and_outbox_and_nothing_else(store):
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE syncd_reader")
        await conn.fetch("SELECT * FROM syncd.users")
        await conn.fetch("SELECT * FROM syncd.outbox")
        try:
            await conn.execute("SAVEPOINT s")
            await conn.fetch("SELECT * FROM syncd.targets")
            raise AssertionError("syncd_reader could read targets")
        except asyncpg.InsufficientPrivilegeError:
            await conn.execute("ROLLBACK TO SAVEPOINT s")
        try:
            await conn.execute(
                "INSERT INTO syncd.outbox (id, aggregateid, type, payload) VALUES (gen_random_uuid(), 'x', 'y', '{}')"
            )
            raise AssertionError("syncd_reader could write the outbox")
        except asyncpg.InsufficientPrivilegeError:
            pass
