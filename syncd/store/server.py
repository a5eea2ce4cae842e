"""Whole databases on a PostgreSQL server: `syncd demo` starts from a fresh one."""

from __future__ import annotations

import asyncpg

from syncd.store.database import CONNECTION_ERRORS, ddl_templates, translate


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier (double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


async def recreate_database(server_dsn: str, database: str) -> None:
    """Drop ``database`` (ending its sessions) and create it empty, over a
    connection to ``server_dsn`` (another database on the same server: one
    cannot drop the database it is connected to)."""
    ddl = ddl_templates()
    name = quote_ident(database)
    try:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(ddl["drop_database"].format(database=name))
            await admin.execute(ddl["create_database"].format(database=name))
        finally:
            await admin.close()
    except CONNECTION_ERRORS as exc:
        raise translate(exc, server_dsn) from exc
