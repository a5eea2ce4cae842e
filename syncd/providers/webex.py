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

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import aiohttp
from pydantic import AfterValidator, model_validator

from syncd.configbase import ProviderBase, at_most_one, need_token, path_segment_id, read_secret
from syncd.http import Auth, TokenFlow
from syncd.jsonutil import loads
from syncd.logs import register_secret
from syncd.model.identity import Identity
from syncd.providers import scim
from syncd.providers.base import ProviderType
from syncd.providers.documents import document, is_scim_not_found, obj
from syncd.providers.scim import ScimFeed, ScimFilter, scim_fields
from syncd.providers.scim import error_detail as scim_error_detail
from syncd.providers.urls import config_url

CISCO = "urn:scim:schemas:extension:cisco:webexidentity:2.0:User"


class WebexConfig(ProviderBase):
    type: Literal["webex"]
    has_feed = True
    #: discovery\'s scope: a SCIM filter (``userType eq "Employee"``)
    discover_filter: ScimFilter | None = None
    org_id: Annotated[str, AfterValidator(path_segment_id)]
    client_id: str | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    refresh_token_env: str | None = None
    refresh_token_file: str | None = None

    @model_validator(mode="after")
    def _auth(self) -> WebexConfig:
        at_most_one(self, "client_secret_env", "client_secret_file")
        at_most_one(self, "refresh_token_env", "refresh_token_file")
        if self.client_id is not None:
            if not (self.client_secret_env or self.client_secret_file):
                raise ValueError("client_id needs client_secret_env or client_secret_file")
            if not (self.refresh_token_env or self.refresh_token_file):
                raise ValueError("client_id needs refresh_token_env or refresh_token_file")
        else:
            need_token(self)
        return self


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
    return scim.make_auth(config)


class WebexAdapter(ScimFeed):
    """Users at ``/identity/scim/{org_id}/v2/Users``; its feed sorts by
    ``meta.lastModified`` (it can't be filtered by it)."""

    normalize = staticmethod(normalize)
    feed_sorted = True

    def __init__(self, config: WebexConfig) -> None:
        users = config_url(config.base_url, "identity", "scim", config.org_id, "v2", "Users", key="org_id")
        super().__init__(config, users)


PROVIDER = ProviderType(
    name="webex",
    config=WebexConfig,
    adapter=WebexAdapter,
    make_auth=make_auth,
    normalize=normalize,
    error_detail=error_detail,
    not_found=is_not_found,
    tracking_header="TrackingID",
)
