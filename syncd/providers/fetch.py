"""Fetching one user: the adapter's request, sent by the client, mapped by the adapter."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from syncd.http import ProviderClient

if TYPE_CHECKING:
    from syncd.model.identity import Identity
    from syncd.providers.base import Adapter


@dataclass(frozen=True, slots=True)
class FetchResult:
    #: the answer's body fingerprint (``Response.fingerprint(salt)``); None for a 304
    fingerprint: str | None
    #: the mapped user; None when the body is the one already known, or not sent (304)
    identity: Identity | None
    #: the answer's ``ETag`` header as it came (unchecked: ``http.etag``)
    etag: str | None = None
    #: the provider answered 304 Not Modified to the ETag sent
    not_modified: bool = False


async def fetch_user(
    adapter: Adapter,
    client: ProviderClient,
    user_id: str,
    *,
    known_body_hash: str | None,
    salt: bytes,
    etag: str | None = None,
) -> FetchResult:
    """One user. With the ``etag`` of the copy we hold, a conditional GET
    (RFC 9110 §13.1.2): a 304 is that copy, current. The same bytes as last
    time (``known_body_hash``) are the same user: neither parsed nor mapped
    (a client-side If-None-Match, for servers without ETags)."""
    request = adapter.user_request(user_id)
    if etag is not None:
        request = replace(request, if_none_match=etag)
    response = await client.send(request)
    if response.not_modified:
        return FetchResult(None, None, etag=etag, not_modified=True)
    fingerprint = response.fingerprint(salt)
    if fingerprint == known_body_hash:
        return FetchResult(fingerprint, None, etag=response.etag)
    return FetchResult(fingerprint, adapter.normalize(client.document(response)), etag=response.etag)
