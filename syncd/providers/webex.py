"""Webex: ``GET {base_url}/identity/scim/{org_id}/v2/Users/{id}`` (SCIM 2 dialect).

Mapped like any SCIM 2 user (``syncd.providers.scim``), plus:

| Webex attribute                                   | record field                 |
|---------------------------------------------------|------------------------------|
| Cisco extension ``accountStatus`` (array or string) | ``state`` (joined with ",")  |
| ``meta.version`` (weak ETag ``W/"…"``)            | ``source_version``           |
| enterprise extension (employeeNumber, costCenter, organization, division, department, manager), Cisco extension (sipAddresses, managedOrgs, managedGroups, extensionAttributeN, externalAttributeN), nickName, title, timezone, addresses, photos, profileUrl, externalId | kept in ``raw`` |

Auth: a static OAuth bearer, or the refresh-token grant against
``{base_url}/v1/access_token`` (Webex may rotate the refresh token: the new
one is kept in memory). Every error is logged with the ``TrackingID`` header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import aiohttp

from syncd.config import WebexConfig, read_secret
from syncd.http import Auth, BearerToken, ProviderClient, TokenFlow
from syncd.identity import Identity
from syncd.jsonutil import loads
from syncd.logs import register_secret
from syncd.providers.base import (
    check_scim_list,
    config_url,
    document,
    get_json,
    is_scim_not_found,
    obj,
    user_url,
)
from syncd.providers.scim import error_detail as scim_error_detail
from syncd.providers.scim import list_scim_ids, scim_fields

CISCO = "urn:scim:schemas:extension:cisco:webexidentity:2.0:User"


def normalize(doc: Any) -> Identity:
    doc = document(doc)
    fields = scim_fields(doc)
    cisco = obj(doc, CISCO)
    status = cisco.get("accountStatus")
    if isinstance(status, str):
        status = [status]
    if status:
        fields["state"] = ",".join(str(s) for s in status)
    return Identity(**fields)


def error_detail(body: bytes) -> str | None:
    """RFC 7644 errors, or Webex's ``{"message", "errors": [{"description"}], "trackingId"}``;
    a 429 may have no body at all."""
    if not body.strip():
        return None
    doc = loads(body)
    if isinstance(doc, dict) and "schemas" in doc:
        return scim_error_detail(body)
    if isinstance(doc, dict):
        message = doc.get("message")
        if not message and doc.get("errors"):
            message = "; ".join(str(e.get("description")) for e in doc["errors"] if isinstance(e, dict))
        if message and doc.get("trackingId"):
            return f"{message} (trackingId {doc['trackingId']})"
        return str(message) if message else None
    return None


def is_not_found(headers: Mapping[str, str], body: bytes) -> bool:
    """Only Webex Identity's SCIM error with ``status`` 404 says "no such user".
    Webex's general ``{"message", "errors", "trackingId"}`` 404 is what its
    router answers for "the URI requested is invalid" (the reference page's
    own words): a wrong org_id or path, never evidence of a deletion."""
    return is_scim_not_found(headers, body)


class RefreshToken(TokenFlow):
    """OAuth refresh-token grant (Webex integrations' access tokens live ~14 days)."""

    def __init__(self, config: WebexConfig) -> None:
        super().__init__(config.name)
        self.url = f"{config.base_url}/v1/access_token"
        self.client_id = config.client_id or ""
        self.secret = read_secret(config, "client_secret_env", "client_secret_file") or ""
        self.refresh = read_secret(config, "refresh_token_env", "refresh_token_file") or ""

    async def obtain(self, session: aiohttp.ClientSession) -> tuple[str, float | None]:
        doc = await self.post_token(
            session,
            self.url,
            data={
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self.secret,
                "refresh_token": self.refresh,
            },
        )
        if doc.get("refresh_token"):
            self.refresh = doc["refresh_token"]
            register_secret(self.refresh)
        return doc["access_token"], doc.get("expires_in")


def make_auth(config: WebexConfig) -> Auth:
    if config.client_id:
        return RefreshToken(config)
    return BearerToken(read_secret(config, "token_env", "token_file") or "")


class WebexProvider:
    type: ClassVar[str] = "webex"
    default_ignore_fields: ClassVar[tuple[str, ...]] = ()
    error_detail = staticmethod(error_detail)
    not_found = staticmethod(is_not_found)
    tracking_header: ClassVar[str | None] = "TrackingID"
    make_auth = staticmethod(make_auth)

    def __init__(self, config: WebexConfig, client: ProviderClient) -> None:
        self.config = config
        self.client = client
        self.users_url = config_url(
            config.base_url, "identity", "scim", config.org_id, "v2", "Users", key="org_id"
        )

    async def fetch(self, user_id: str) -> Identity:
        return normalize(await get_json(self.client, user_url(self.users_url, user_id, self.config.name)))

    async def check(self) -> str:
        return await check_scim_list(self.client, self.users_url, normalize)

    def list_ids(self) -> AsyncIterator[str]:
        return list_scim_ids(self.client, self.users_url)
