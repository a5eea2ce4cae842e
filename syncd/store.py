"""The store: the only code that talks to PostgreSQL.

Queries live in ``queries.sql`` (loaded once by name); the schema lives in
the numbered migrations under ``sql/``. asyncpg errors become
``StoreUnavailable`` here, so callers never see a driver exception.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import structlog

from syncd import jsonutil
from syncd.errors import StoreUnavailable, SyncdError, WriteRefused

log = structlog.get_logger("syncd.store")

_PACKAGE = Path(__file__).resolve().parent
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
#: pg_advisory_xact_lock key that serialises `syncd migrate` runs
MIGRATION_LOCK = 0x73796E6364  # "syncd"
#: seconds one migration file may run (each lock it waits for is bounded by
#: ``migrate``'s lock_timeout; this bounds rebuilding a large mirror's indexes)
MIGRATION_TIMEOUT = 6 * 3600.0
#: errors that mean "the database went away", not "the query is wrong"
CONNECTION_ERRORS = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
    TimeoutError,
)
#: errors that mean "PostgreSQL (or encoding the parameters) refused what this
#: write carries": the same rows fail again, others would go in
CONTENT_ERRORS = (
    asyncpg.exceptions.DataError,  # 22xxx: invalid or untranslatable values
    asyncpg.exceptions.ProgramLimitExceededError,  # 54xxx: jsonb over 256 MiB
    asyncpg.exceptions.IntegrityConstraintViolationError,  # 23xxx: a CHECK
    orjson.JSONEncodeError,
)


@cache
def queries() -> dict[str, str]:
    text = (_PACKAGE / "queries.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


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


def migrations() -> list[Migration]:
    files = sorted(p for p in migrations_dir().glob("*.sql") if re.match(r"^\d{3}_", p.name))
    return [Migration(p.stem, p) for p in files]


def _encode_jsonb(value: Any) -> bytes:
    # binary jsonb is a version byte (1) and the JSON text; binary format also
    # lets asyncpg send jsonb[] without a text array literal (10x faster).
    # bytes are JSON text encoded already (ChangeSet.param, TargetUpdates.param)
    if isinstance(value, bytes):
        return b"\x01" + value
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_encode_jsonb, decoder=_decode_jsonb, format="binary"
    )
    await conn.set_type_codec("json", schema="pg_catalog", encoder=jsonutil.dumps, decoder=jsonutil.loads)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's reset query (``RESET ALL; UNLISTEN *; …``),
    which is a round trip per statement: syncd keeps no session state on pooled
    connections (LISTEN has its own connection, advisory locks are
    transaction-scoped), and an open transaction is still rolled back."""


def _translate(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"PostgreSQL unavailable: {exc.__class__.__name__}: {exc}".strip())


class Store:
    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self.pool = pool
        self.dsn = dsn
        self.q = queries()
        #: round trips made, for the benchmark
        self.round_trips = 0

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> Store:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                command_timeout=60,
                server_settings={
                    "application_name": "syncd",
                    # plan every batch statement for its own arrays and the tables as
                    # they are now: a generic plan, made once when a mirror was small
                    # (a first sync, or after a TRUNCATE), kept scanning the whole
                    # table per row as it grew (a 20k first sync: 6 s became 22 s)
                    "plan_cache_mode": "force_custom_plan",
                },
                reset=_keep_session,
            )
        except CONNECTION_ERRORS as exc:
            raise _translate(exc) from exc
        except asyncpg.PostgresError as exc:
            raise StoreUnavailable(f"PostgreSQL refused the connection: {exc}") from exc
        assert pool is not None
        return cls(pool, dsn)

    async def close(self) -> None:
        await self.pool.close()

    # -- plumbing ------------------------------------------------------------------
    async def _run(self, method: str, name: str, *args: Any) -> Any:
        self.round_trips += 1
        try:
            async with self.pool.acquire() as conn:
                return await getattr(conn, method)(self.q[name], *args)
        except CONNECTION_ERRORS as exc:
            raise _translate(exc) from exc

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        return await self._run("fetch", name, *args)

    async def fetchrow(self, name: str, *args: Any) -> asyncpg.Record | None:
        return await self._run("fetchrow", name, *args)

    async def execute(self, name: str, *args: Any) -> str:
        return await self._run("execute", name, *args)

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=5) as conn:
                await conn.fetchval("SELECT 1")
            return True
        except (*CONNECTION_ERRORS, asyncpg.PostgresError):
            return False

    # -- migrations ------------------------------------------------------------------
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
                await conn.execute(
                    "CREATE SCHEMA IF NOT EXISTS syncd;"
                    "CREATE TABLE IF NOT EXISTS syncd.schema_migrations ("
                    " version text PRIMARY KEY, checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {
                    r["version"]: r["checksum"]
                    for r in await conn.fetch("SELECT version, checksum FROM syncd.schema_migrations")
                }
                for m in migrations():
                    if m.version in done:
                        if done[m.version] != m.checksum:
                            log.warning("migrate.checksum_mismatch", version=m.version)
                        continue
                    step = f"migration {m.version}"
                    # rebuilding a large mirror's indexes outlasts the pool's command timeout
                    await conn.execute(m.sql, timeout=MIGRATION_TIMEOUT)
                    await conn.execute(
                        "INSERT INTO syncd.schema_migrations (version, checksum) VALUES ($1, $2)",
                        m.version,
                        m.checksum,
                    )
                    applied.append(m.version)
                step = "the commit of the migrations"
            for version in applied:
                log.info("migrate.applied", version=version)
        except CONNECTION_ERRORS as exc:
            raise _translate(exc) from exc
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
                done = (
                    {r[0] for r in await conn.fetch("SELECT version FROM syncd.schema_migrations")}
                    if exists
                    else set()
                )
        except CONNECTION_ERRORS as exc:
            raise _translate(exc) from exc
        return [m.version for m in migrations() if m.version not in done]

    # -- targets ---------------------------------------------------------------------
    async def add_targets(self, provider: str, user_ids: Sequence[str]) -> None:
        for chunk in _chunks(user_ids, 10_000):
            await self.execute("add_targets", provider, chunk)

    async def remove_targets(self, provider: str, user_ids: Sequence[str]) -> int:
        status = await self.execute("remove_targets", provider, list(user_ids))
        return int(status.split()[-1])

    async def make_due(self, provider: str, user_ids: Sequence[str] | None) -> int:
        status = await self.execute("make_due", provider, list(user_ids) if user_ids is not None else None)
        return int(status.split()[-1])

    async def lease_due(
        self, provider: str, owner: str, lease_seconds: float, limit: int, only: Sequence[str] | None = None
    ) -> list[asyncpg.Record]:
        return await self.fetch(
            "lease_due", provider, owner, lease_seconds, limit, list(only) if only else None
        )

    async def release_leases(self, owner: str, provider: str | None = None) -> None:
        await self.execute("release_leases", owner, provider)

    async def mirror_rows(self, provider: str, user_ids: Sequence[str]) -> dict[str, asyncpg.Record]:
        if not user_ids:
            return {}
        return {r["user_id"]: r for r in await self.fetch("mirror_rows", provider, list(user_ids))}

    # -- the write path ---------------------------------------------------------------------
    async def write_batch(self, provider: str, owner: str, changes: ChangeSet, done: TargetUpdates) -> int:
        """Events + mirror rows + target bookkeeping for one batch: one statement
        (so atomic, and one round trip); returns the number of events written."""
        self.round_trips += 1
        try:
            row = await self.pool.fetchrow(
                self.q["write_batch"], provider, owner, changes.param(), done.param()
            )
        except CONNECTION_ERRORS as exc:
            raise _translate(exc) from exc
        except CONTENT_ERRORS as exc:
            raise WriteRefused(f"{exc.__class__.__name__}: {str(exc)[:300]}") from exc
        return int(row["events"]) if row else 0

    # -- runs ------------------------------------------------------------------------
    async def start_run(self, provider: str, trigger: str, replica: str, lease_seconds: float) -> int:
        row = await self.fetchrow("start_run", provider, trigger, replica, lease_seconds)
        assert row is not None
        return int(row["id"])

    async def finish_run(self, run_id: int, status: str, counts: dict[str, int], error: str | None) -> None:
        await self.execute(
            "finish_run",
            run_id,
            status,
            *(counts.get(k, 0) for k in RUN_COUNTS),
            error,
        )

    # -- provider state ---------------------------------------------------------------------
    async def set_pause(self, provider: str, until: datetime, reason: str) -> None:
        await self.fetch("set_pause", provider, until, reason)

    async def get_pause(self, provider: str) -> datetime | None:
        row = await self.fetchrow("get_pause", provider)
        return row["paused_until"] if row else None

    async def pause_state(self, provider: str) -> PauseState:
        row = await self.fetchrow("get_pause", provider)
        if row is None:
            return PauseState(None, False, None)
        return PauseState(row["paused_until"], row["pause_reason"] == PAUSE_CLEARED, row["updated_at"])

    async def clear_pause(self, provider: str) -> datetime | None:
        """An admin ends a provider's pause for every replica; returns the
        instant it would have ended (None: there was none)."""
        row = await self.fetchrow("clear_pause", provider, PAUSE_CLEARED)
        return row["was_until"] if row else None

    @asynccontextmanager
    async def listen(
        self, channel: str, callback: Callable[[str], None]
    ) -> AsyncIterator[asyncpg.Connection]:
        """LISTEN on a dedicated connection while the context is open."""
        try:
            conn = await asyncpg.connect(self.dsn)
        except CONNECTION_ERRORS as exc:
            raise _translate(exc) from exc

        def on_notify(_c: object, _pid: int, _channel: str, payload: str) -> None:
            callback(payload)

        try:
            await conn.add_listener(channel, on_notify)
            yield conn
        finally:
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                conn.terminate()

    async def leased_elsewhere(
        self, provider: str, owner: str, only: Sequence[str] | None = None
    ) -> tuple[int, datetime | None, float, list[str]]:
        """Targets of ``provider`` (or only ``only``) whose unexpired lease
        someone other than ``owner`` holds: (how many, when the last of those
        leases ends, seconds until then by the database's clock, the owners)."""
        row = await self.fetchrow("leased_elsewhere", provider, owner, list(only) if only else None)
        assert row is not None
        return int(row["n"]), row["until"], float(row["seconds_left"]), list(row["owners"])


#: provider_state.pause_reason of a pause an admin cleared (`syncd pause clear`)
PAUSE_CLEARED = "cleared by an admin"


@dataclass(frozen=True, slots=True)
class PauseState:
    """A provider's shared pause as ``provider_state`` records it."""

    until: datetime | None
    #: an admin cleared it: replicas drop their own pause too (once per clear)
    cleared: bool
    #: when the row last changed: tells one clear from the next
    changed_at: datetime | None


RUN_COUNTS = (
    "fetched",
    "created",
    "updated",
    "deleted",
    "restored",
    "unchanged",
    "failed",
    "not_found",
    "held",
)


@dataclass(slots=True)
class ChangeSet:
    """The events of a batch, for the ``write_batch`` statement.

    A batch goes to PostgreSQL as ONE jsonb document (a list of rows), encoded
    by a single orjson call, rather than as a dozen arrays: asyncpg inspects
    every element of an array parameter in Python, which cost more than
    everything else syncd does for a created user but fetch and parse it."""

    user_ids: list[str]
    event_ids: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    #: about how many bytes of JSON each row's payload is (to split a batch)
    sizes: list[int]

    @classmethod
    def empty(cls) -> ChangeSet:
        return cls([], [], [], [], [])

    def add(
        self,
        user_id: str,
        event_id: str,
        type_: str,
        payload: dict[str, Any],
        content_hash: str | None,
        *,
        size: int = 0,
    ) -> None:
        self.user_ids.append(user_id)
        self.event_ids.append(event_id)
        self.types.append(type_)
        self.rows.append((user_id, event_id, type_, payload, content_hash))
        self.sizes.append(size)

    def __len__(self) -> int:
        return len(self.user_ids)

    def param(self) -> bytes:
        """``[[user_id, event_id, type, payload, content_hash], …]`` as JSON."""
        return orjson.dumps(self.rows)

    def subset(self, user_ids: Sequence[str]) -> ChangeSet:
        """The events of these users only."""
        keep = set(user_ids)
        out = ChangeSet.empty()
        for i, uid in enumerate(self.user_ids):
            if uid in keep:
                out.user_ids.append(uid)
                out.event_ids.append(self.event_ids[i])
                out.types.append(self.types[i])
                out.rows.append(self.rows[i])
                out.sizes.append(self.sizes[i])
        return out

    def split(self, done: TargetUpdates, budget: int) -> list[tuple[ChangeSet, TargetUpdates]]:
        """The batch as writes of at most ``budget`` bytes of events each (one
        user's events and target row always in the same write, so each write
        is atomic for its users). Nearly always one part: the batch itself."""
        if sum(self.sizes) <= budget:
            return [(self, done)]
        size = dict(zip(self.user_ids, self.sizes, strict=True))
        users = list(dict.fromkeys([*self.user_ids, *done.user_ids()]))
        parts: list[list[str]] = [[]]
        used = 0
        for uid in users:
            n = size.get(uid, 0)
            if parts[-1] and used + n > budget:
                parts.append([])
                used = 0
            parts[-1].append(uid)
            used += n
        return [(self.subset(p), done.subset(p)) for p in parts]


@dataclass(slots=True)
class TargetUpdates:
    """The bookkeeping of a batch (one row per leased target), for the
    ``write_batch`` statement; sent as one jsonb document like ``ChangeSet``."""

    statuses: list[str]
    rows: list[tuple[Any, ...]]

    @classmethod
    def empty(cls) -> TargetUpdates:
        return cls([], [])

    def add(
        self,
        user_id: str,
        status: str,
        *,
        next_in: float,
        error: str | None = None,
        nf_count: int = 0,
        nf_since: datetime | None = None,
        failed: bool = False,
        body_hash: str | None = None,
    ) -> None:
        self.statuses.append(status)
        self.rows.append((user_id, status, error, next_in, nf_count, nf_since, failed, body_hash))

    def __len__(self) -> int:
        return len(self.rows)

    def param(self) -> bytes:
        """``[[user_id, status, error, next_in, nf_count, nf_since, failed, body_hash], …]``."""
        return orjson.dumps(self.rows)

    def user_ids(self) -> list[str]:
        return [r[0] for r in self.rows]

    def subset(self, user_ids: Sequence[str]) -> TargetUpdates:
        """The rows of these users only."""
        keep = set(user_ids)
        out = TargetUpdates.empty()
        for status, row in zip(self.statuses, self.rows, strict=True):
            if row[0] in keep:
                out.statuses.append(status)
                out.rows.append(row)
        return out


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    items = list(items)
    return [items[i : i + size] for i in range(0, len(items), size)] or []
