"""The schema's numbered migrations (``sql/``) and the runner that applies them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from syncd.errors import SyncdError
from syncd.store.database import CONNECTION_ERRORS, Database, translate

log = structlog.get_logger("syncd.store")

_PACKAGE = Path(__file__).resolve().parent.parent
#: pg_advisory_xact_lock key that serialises `syncd migrate` runs
MIGRATION_LOCK = 0x73796E6364  # "syncd"
#: seconds one migration file may run (each lock it waits for is bounded by
#: ``migrate``'s lock_timeout; this bounds rebuilding a large mirror's indexes)
MIGRATION_TIMEOUT = 6 * 3600.0
#: checksums of earlier texts of a migration whose comments (only) were
#: corrected since: a database that applied the old text is not warned about
CORRECTED_COMMENTS = {
    "005_outbox_write_cost": {"4dda7801a548344a39fe9be2422b57da4d844f78a00ed3aba958cb19d94d90e4"},
}


def migrations_dir() -> Path:
    """``sql/`` beside the package in a checkout, ``syncd/_sql`` in a wheel."""
    for candidate in (_PACKAGE / "_sql", _PACKAGE.parent / "sql"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("syncd's sql/ migrations are missing from this installation")


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def matches(self, checksum: str) -> bool:
        return checksum == self.checksum or checksum in CORRECTED_COMMENTS.get(self.version, ())


def migrations() -> list[Migration]:
    files = sorted(p for p in migrations_dir().glob("*.sql") if re.match(r"^\d{3}_", p.name))
    return [Migration(p.stem, p) for p in files]


class Migrations(Database):
    #: the versions this store's last ``migrate()`` applied (``syncd migrate``
    #: reports them; it migrates through ``open_store``, which keeps no result)
    migrated: tuple[str, ...] = ()

    async def migrate(self, *, lock_timeout: float = 10.0) -> list[str]:
        """Apply every migration not yet applied, in one transaction, under an
        advisory lock (two ``syncd migrate`` at once: the second waits, then
        finds nothing to do). Returns the versions applied.

        A migration that can't get a table's lock within ``lock_timeout``
        seconds (a running replica or a long downstream read holds it) fails,
        and nothing is applied: waiting on would queue every reader and writer
        of that table behind it."""
        if not lock_timeout >= 0.001:
            raise ValueError(
                f"lock_timeout must be at least 1 ms, not {lock_timeout!r} (0 would wait forever)"
            )
        applied: list[str] = []
        step = "the schema setup"
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                # after the advisory lock: a second migrator waits for the first as long as it takes
                await conn.execute(f"SET LOCAL lock_timeout = '{round(lock_timeout * 1000)}ms'")
                already = await _applied(conn)
                for m in migrations():
                    if m.version in already:
                        if not m.matches(already[m.version]):
                            log.warning("migrate.checksum_mismatch", version=m.version)
                        continue
                    step = f"migration {m.version}"
                    await _apply(conn, m)
                    applied.append(m.version)
                step = "the commit of the migrations"
            for version in applied:
                log.info("migrate.applied", version=version)
            self.migrated = tuple(applied)
        except CONNECTION_ERRORS as exc:
            raise translate(exc, self.dsn) from exc
        except asyncpg.LockNotAvailableError as exc:
            log.error("migrate.lock_timeout", step=step, lock_timeout=lock_timeout)
            raise SyncdError(
                f"{step} could not lock its tables within {lock_timeout:g} s (running"
                " replicas or long readers hold them); nothing was applied: stop the replicas, or"
                " retry when the tables are quiet"
            ) from exc
        except asyncpg.PostgresError as exc:
            log.error("migrate.failed", step=step, error=str(exc))
            raise SyncdError(f"{step} failed, nothing was applied: {exc}") from exc
        return applied

    async def pending_migrations(self) -> list[str]:
        try:
            async with self.pool.acquire() as conn:
                exists = await conn.fetchval("SELECT to_regclass('syncd.schema_migrations') IS NOT NULL")
                already = (
                    {r[0] for r in await conn.fetch("SELECT version FROM syncd.schema_migrations")}
                    if exists
                    else set()
                )
        except CONNECTION_ERRORS as exc:
            raise translate(exc, self.dsn) from exc
        return [m.version for m in migrations() if m.version not in already]


async def _applied(conn: asyncpg.Connection) -> dict[str, str]:
    """The bookkeeping table (made if missing): version → checksum applied."""
    await conn.execute(
        "CREATE SCHEMA IF NOT EXISTS syncd;"
        "CREATE TABLE IF NOT EXISTS syncd.schema_migrations ("
        " version text PRIMARY KEY, checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    rows = await conn.fetch("SELECT version, checksum FROM syncd.schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    # rebuilding a large mirror's indexes outlasts the pool's command timeout
    await conn.execute(migration.sql, timeout=MIGRATION_TIMEOUT)
    await conn.execute(
        "INSERT INTO syncd.schema_migrations (version, checksum) VALUES ($1, $2)",
        migration.version,
        migration.checksum,
    )
