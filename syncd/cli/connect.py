"""The database a command works on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from syncd import embedded
from syncd.config import Config
from syncd.errors import SyncdError
from syncd.store import Store


@contextlib.asynccontextmanager
async def open_store(cfg: Config, *, migrate: bool = False) -> AsyncIterator[Store]:
    """Connect to the configured database, or start the embedded one; then
    migrate it, or refuse a schema that is not current."""
    server = None
    url = cfg.database.resolved_url()
    if not url:
        embedded.announce(cfg.state_dir, cfg.database.embedded_reason(cfg.source))
        server = await asyncio.to_thread(embedded.start, cfg.state_dir)
        url = embedded.url(server)
    store = await Store.connect(url, min_size=cfg.database.pool_min, max_size=cfg.database.pool_max)
    try:
        if migrate:
            await store.migrate()
        else:
            pending = await store.pending_migrations()
            if pending:
                raise SyncdError(
                    f"the database schema is not current (pending: {', '.join(pending)}): run `syncd migrate`"
                )
        yield store
    finally:
        await store.close()
