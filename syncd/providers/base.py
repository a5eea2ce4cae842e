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

from syncd.errors import MalformedResponse, NotFound

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


def document(doc: Any) -> dict[str, Any]:
    """The provider's answer when it is a JSON object. Valid JSON of another
    kind (``null``, ``[]``, ``"x"``) is a ``MalformedResponse``: that user's
    error, with a message an operator can read, not a crash in the mapping."""
    if isinstance(doc, dict):
        return doc
    raise MalformedResponse(f"expected a JSON object, got {json_kind(doc)}")


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type (RFC 8259 §3)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """``doc[key]`` when it is a JSON object, else ``{}`` (providers omit or null
    sub-objects, e.g. ZITADEL's zero values, Wacht's missing phone)."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}
