"""Listing a provider's users, page by page, through the shared client.

The adapter builds each request and reads each page (``Lister``); this is
the only I/O. Whether the pages make a complete listing is
``syncd.discovery.listing``'s to decide.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import structlog

from syncd.errors import ConfigError, ProviderError
from syncd.http import ProviderClient
from syncd.model.listing import Cursor, ListSettings, Page
from syncd.providers.base import Adapter, Lister

log = structlog.get_logger("syncd.discovery")

#: a settings request answered with one of these: the server has no such
#: endpoint (many SCIM servers lack ServiceProviderConfig); defaults apply
NO_SUCH_ENDPOINT = frozenset({404, 405, 501})


def lister(adapter: Adapter | Lister, provider: str) -> Lister:
    if not isinstance(adapter, Lister):
        raise ConfigError(f"provider {provider!r}: its type cannot list users")
    return adapter


async def settings_document(adapter: Lister, client: ProviderClient) -> Any:
    """What the server says it supports (SCIM's ServiceProviderConfig); None
    where the reference fixes it, or the server has no such endpoint."""
    request = adapter.list_settings_request()
    if request is None:
        return None
    try:
        return client.document(await client.send(request))
    except ProviderError as exc:
        if exc.status not in NO_SUCH_ENDPOINT:
            raise
        log.info(
            "provider.no_settings_endpoint", provider=client.provider, url=request.url, status=exc.status
        )
        return None


async def list_settings(adapter: Lister, client: ProviderClient) -> ListSettings:
    return adapter.list_settings(await settings_document(adapter, client))


async def list_pages(adapter: Adapter | Lister, client: ProviderClient) -> AsyncIterator[Page]:
    """Every page, first to last, as the adapter read it."""
    pages = lister(adapter, client.provider)
    settings = await list_settings(pages, client)
    cursor: Cursor = None
    while True:
        request = pages.list_request(cursor, settings)
        page = pages.list_page(client.document(await client.send(request)), cursor, settings)
        yield page
        if page.next is None:
            return
        cursor = page.next


async def list_ids(adapter: Adapter | Lister, client: ProviderClient) -> AsyncIterator[str]:
    """The ids of every page, unchecked (``syncd discover`` checks them)."""
    async for page in list_pages(adapter, client):
        for uid in page.ids:
            yield uid
