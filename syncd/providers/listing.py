"""Listing every user id a provider holds, page by page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from syncd.errors import ConfigError
from syncd.http import ProviderClient


async def list_ids(adapter: Any, client: ProviderClient) -> AsyncIterator[str]:
    """The adapter's pages (``Lister``), sent by the client, until the last."""
    if not hasattr(adapter, "list_request"):
        raise ConfigError(f"provider {client.provider!r}: its type cannot list users")
    cursor: str | None = None
    while True:
        request = adapter.list_request(cursor)
        page = adapter.list_page(client.document(await client.send(request)), cursor)
        for uid in page.ids:
            yield uid
        if page.next is None:
            return
        cursor = page.next
