"""The connection pool and the plumbing every table family's queries share.

Queries live in ``<family>.sql`` beside this module (loaded once by name);
the schema lives in the numbered migrations under ``sql/``. asyncpg errors
become ``StoreUnavailable`` here, so callers never see a driver exception.
Only the modules of this package run SQL; each wraps one named query in a
typed method with named arguments.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import asyncpg
import orjson
import structlog

from syncd import jsonutil
from syncd.errors import StoreUnavailable

log = structlog.get_logger("syncd.store")

_HERE = Path(__file__).resolve().parent
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
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
    """Every named query of every ``*.sql`` file beside this module."""
    return _named_blocks("*.sql")


@cache
def ddl_templates() -> dict[str, str]:
    """Every named DDL template of every ``*.ddl`` file beside this module:
    statements that take an identifier (``str.format``), not parameters."""
    return _named_blocks("*.ddl")


def _named_blocks(pattern: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(_HERE.glob(pattern)):
        parts = _NAME.split(path.read_text(encoding="utf-8"))
        for i in range(1, len(parts), 2):
            if parts[i] in out:
                raise RuntimeError(f"query {parts[i]!r} is defined twice ({path.name})")
            out[parts[i]] = parts[i + 1].strip()
    return out


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


def translate(exc: BaseException, dsn: str | None = None) -> StoreUnavailable:
    """The driver's error as ours, naming the server it was about (an
    ``OSError`` from a refused connect or a failed lookup often does not)."""
    at = f" at {server_address(dsn)}" if dsn else ""
    return StoreUnavailable(f"PostgreSQL{at} unavailable: {exc.__class__.__name__}: {exc}".strip())


def server_address(dsn: str) -> str:
    """``host:port`` of a connection URL (or its socket directory), never
    its user or password; libpq's defaults where the URL leaves them out."""
    try:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = parts.hostname or (query.get("host") or [""])[0] or os.environ.get("PGHOST", "")
        port = parts.port or (query.get("port") or [""])[0] or os.environ.get("PGPORT", "") or 5432
    except ValueError:
        return "(an unreadable database URL)"
    if not host or host.startswith("/"):
        return f"socket {host or '/var/run/postgresql'} port {port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Database:
    """The pool, and one round trip per named query (``_fetch``, ``_fetchrow``,
    ``_execute``: for this package's modules only)."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self.pool = pool
        self.dsn = dsn
        self.q = queries()
        #: round trips made, for the benchmark
        self.round_trips = 0

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> Self:
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
            raise translate(exc, dsn) from exc
        except asyncpg.PostgresError as exc:
            raise StoreUnavailable(
                f"PostgreSQL at {server_address(dsn)} refused the connection: {exc}"
            ) from exc
        assert pool is not None
        return cls(pool, dsn)

    async def close(self) -> None:
        await self.pool.close()

    def terminate(self) -> None:
        """Close every pooled connection now: whatever waits on one fails."""
        self.pool.terminate()

    # -- plumbing ------------------------------------------------------------------
    async def _run(self, method: str, name: str, *args: Any) -> Any:
        self.round_trips += 1
        try:
            async with self.pool.acquire() as conn:
                return await getattr(conn, method)(self.q[name], *args)
        except CONNECTION_ERRORS as exc:
            raise translate(exc, self.dsn) from exc

    async def _fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        return await self._run("fetch", name, *args)

    async def _fetchrow(self, name: str, *args: Any) -> asyncpg.Record | None:
        return await self._run("fetchrow", name, *args)

    async def _execute(self, name: str, *args: Any) -> str:
        return await self._run("execute", name, *args)

    async def _count(self, name: str, *args: Any) -> int:
        """An INSERT/UPDATE/DELETE's row count (``"UPDATE 3"`` → 3)."""
        return int((await self._execute(name, *args)).split()[-1])

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=5) as conn:
                await conn.fetchval("SELECT 1")
            return True
        except (*CONNECTION_ERRORS, asyncpg.PostgresError):
            return False
