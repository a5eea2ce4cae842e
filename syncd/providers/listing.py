"""Listing every user id a provider holds, page by page."""

from __future__ import annotations

from collections.abc import AsyncIterator

from syncd.errors import ConfigError
from syncd.http import ProviderClient
from syncd.providers.base import Adapter, Lister


async def list_ids(adapter: Adapter | Lister, client: ProviderClient) -> AsyncIterator[str]:
    """The adapter's pages (``Lister``), sent by the client, until the last."""
    if not isinstance(adapter, Lister):
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
