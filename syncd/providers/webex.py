"""Webex: ``GET {base_url}/identity/scim/{org_id}/v2/Users/{id}`` (SCIM 2 dialect).

Mapped like any SCIM 2 user (``syncd.providers.scim``), plus:

| Webex attribute                                   | record field                 |
|---------------------------------------------------|------------------------------|
| Cisco extension ``accountStatus`` (array or string) | ``state`` (joined with ",")  |
| ``meta.version`` (weak ETag ``W/"…"``)            | ``source_version``           |
| enterprise extension (employeeNumber, costCenter, organization, division, department, manager), Cisco extension (sipAddresses, managedOrgs, managedGroups, extensionAttributeN, externalAttributeN), nickName, title, timezone, addresses, photos, profileUrl, externalId | kept in ``raw`` |

Auth: a static OAuth bearer, or the refresh-token grant against
``{base_url}/v1/access_token`` (or ``token_url``), the client id and secret
in the form (``token_auth = "post"``, what Webex asks for). Webex may rotate
the refresh token and revoke the old one: the newest is kept in the database
(``syncd.refresh_tokens``), shared by replicas and read by the next process.
The other schemes of ``syncd.providers.auth`` (Basic, a custom header) are
there for a proxy in front of it. Every error is logged with the
``TrackingID`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from syncd.configbase import path_segment_id
from syncd.http import Auth
from syncd.jsonutil import loads
from syncd.model.identity import Identity
from syncd.providers.auth import AuthConfig
from syncd.providers.auth import make_auth as scheme_auth
from syncd.providers.base import ProviderType
from syncd.providers.documents import ci_get, document, is_scim_not_found
from syncd.providers.scim import (
    REPRESENTATION_FIELDS,
    ScimFeed,
    ScimFilter,
    ci_obj,
    scim_fields,
)
from syncd.providers.scim import error_detail as scim_error_detail
from syncd.providers.urls import config_url

CISCO = "urn:scim:schemas:extension:cisco:webexidentity:2.0:User"


class WebexConfig(AuthConfig):
    type: Literal["webex"]
    has_feed = True
    #: the integration's token endpoint, and how Webex reads the client's credentials
    default_token_path = "/v1/access_token"
    default_token_auth = "post"
    #: Webex integrations have the refresh grant only (no client credentials)
    refresh_grant_only = True
    #: discovery\'s scope: a SCIM filter (``userType eq "Employee"``)
    discover_filter: ScimFilter | None = None
    org_id: Annotated[str, AfterValidator(path_segment_id)]


def normalize(doc: Any) -> Identity:
    doc = document(doc)
    fields = scim_fields(doc)
    status = ci_get(ci_obj(doc, CISCO), "accountStatus")
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


def make_auth(config: WebexConfig) -> Auth:
    """The scheme configured: with ``client_id``, the refresh-token grant."""
    return scheme_auth(config)


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
    representation_fields=REPRESENTATION_FIELDS,
)
