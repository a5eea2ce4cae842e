"""The protocol every provider adapter implements, and its registry.

An adapter is one module under ``syncd/providers/``: a pure ``normalize(doc)``
that maps the provider's document to an ``Identity`` (testable with a dict),
and a thin ``Provider`` class that builds the request and makes it through
the shared HTTP layer (``syncd.http.ProviderClient``). Registering it is one
line in ``syncd/providers/__init__.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from syncd.errors import NotFound

if TYPE_CHECKING:
    from syncd.config import ProviderConfig
    from syncd.http import ProviderClient
    from syncd.identity import Identity


class Provider(Protocol):
    """What the engine needs from a provider adapter."""

    #: the ``type`` value in the config that selects this adapter
    type: ClassVar[str]
    #: fields ignored for diffing unless the config says otherwise
    default_ignore_fields: ClassVar[tuple[str, ...]]

    def __init__(self, config: ProviderConfig, client: ProviderClient) -> None: ...

    async def fetch(self, user_id: str) -> Identity:
        """Fetch one user by id. Raises ``NotFound`` for a 404 and other
        ``ProviderError`` subclasses for everything else that went wrong."""
        ...

    async def check(self) -> None:
        """Prove the credentials are accepted (raises ``AuthError`` if not)."""
        ...


class ListsUsers(Protocol):
    """Optional: adapters whose API can list users (Wacht, Fortanix, Webex,
    SCIM) also implement this; ZITADEL's list is a POST search, not wired yet."""

    def list_ids(self) -> AsyncIterator[str]:
        """Every user id the provider holds, page by page."""
        ...


async def probe(client: ProviderClient, url: str) -> None:
    """``check()`` for most providers: any authenticated read proves the
    credentials; a missing resource is a 404, not a 401."""
    try:
        await client.get_json(url)
    except NotFound:
        pass


def obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """``doc[key]`` when it is a JSON object, else ``{}`` (providers omit or null
    sub-objects, e.g. ZITADEL's zero values, Wacht's missing phone)."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}
