"""Fetching one user: the adapter's request, sent by the client, mapped by the adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd.http import ProviderClient

if TYPE_CHECKING:
    from syncd.model.identity import Identity
    from syncd.providers.base import Adapter


@dataclass(frozen=True, slots=True)
class FetchResult:
    #: the answer's body fingerprint (``Response.fingerprint(salt)``)
    fingerprint: str
    #: the mapped user; None when the body is the one already known
    identity: Identity | None


async def fetch_user(
    adapter: Adapter, client: ProviderClient, user_id: str, *, known_body_hash: str | None, salt: bytes
) -> FetchResult:
    """One user. The same bytes as last time (``known_body_hash``) are the same
    user: neither parsed nor mapped (a client-side If-None-Match)."""
    response = await client.send(adapter.user_request(user_id))
    fingerprint = response.fingerprint(salt)
    if fingerprint == known_body_hash:
        return FetchResult(fingerprint, None)
    return FetchResult(fingerprint, adapter.normalize(client.document(response)))
