"""README's SQL consumer, run as written by a role granted syncd_consumer
(real PostgreSQL, the fake ZITADEL): it claims and marks rows, several
consumers in parallel never get the same row, and the role can do nothing
else; syncd_reader stays read-only (its FOR UPDATE is refused, as the README
says)."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

from tests.integration.conftest import seeded

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_consumer_sql() -> list[str]:
    """The statements of README's "Consuming the outbox from SQL" block."""
    text = README.read_text().split("Consuming the outbox from SQL", 1)[1]
    block = text.split("```sql\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in " ".join(lines).split(";") if s.strip()]


async def as_role(store, role: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(store.dsn)
    await conn.execute(f"SET ROLE {role}")
    return conn


async def claim_as_written(conn: asyncpg.Connection) -> list[str]:
    """README's statements in order; the UPDATE's $1 is the ids selected."""
    listen, begin, select, update, commit = readme_consumer_sql()
    assert (listen, begin, commit) == ("LISTEN syncd_outbox", "BEGIN", "COMMIT")
    await conn.execute(listen)
    async with conn.transaction():
        rows = await conn.fetch(select)
        await conn.execute(update, [r["id"] for r in rows])
    return [r["aggregateid"] for r in rows]


async def test_the_readme_consumer_works_as_written_for_syncd_consumer(
    zitadel, store, make_config, engine_for
):
    _, engine = await seeded(store, zitadel, make_config, engine_for, n=150)
    await engine.sync("zitadel")
    first, second = await as_role(store, "syncd_consumer"), await as_role(store, "syncd_consumer")
    try:
        async with first.transaction():
            held = await first.fetch(readme_consumer_sql()[2])  # one consumer holds 100 rows …
            other = await claim_as_written(second)  # … the other claims the rest, skipping them
            await first.execute(readme_consumer_sql()[3], [r["id"] for r in held])
        assert len(held) == 100 and len(other) == 50
        assert not {r["aggregateid"] for r in held} & set(other)
        left = await store.pool.fetchval("SELECT count(*) FROM syncd.outbox WHERE processed_at IS NULL")
        assert left == 0
        assert await first.fetchval("SELECT count(*) FROM syncd.users") == 150  # it reads the mirror
        for forbidden in (
            "UPDATE syncd.outbox SET payload = '{}'::jsonb",
            "DELETE FROM syncd.outbox",
            "UPDATE syncd.users SET display_name = 'x'",
            "SELECT count(*) FROM syncd.targets",
            "UPDATE syncd.provider_state SET paused_until = now()",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await first.execute(forbidden)
    finally:
        await first.close()
        await second.close()


async def test_syncd_reader_reads_but_cannot_claim(zitadel, store, make_config, engine_for):
    _, engine = await seeded(store, zitadel, make_config, engine_for, n=3)
    await engine.sync("zitadel")
    reader = await as_role(store, "syncd_reader")
    try:
        assert await reader.fetchval("SELECT count(*) FROM syncd.outbox") == 3
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with reader.transaction():
                await reader.fetch(readme_consumer_sql()[2])
    finally:
        await reader.close()


def test_the_readme_names_the_consumer_role_next_to_its_sql():
    text = README.read_text().split("Consuming the outbox from SQL", 1)[1][:600]
    assert re.search(r"syncd_consumer", text)
