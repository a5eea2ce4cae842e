"""Any SCIM 2 server (RFC 7643/7644): ``GET {base_url}/Users/{id}``, bearer token.

The SCIM core and enterprise mapping here is shared by the Webex adapter and
Wacht's SCIM body shape, which are SCIM dialects.

| SCIM attribute (RFC 7643 §4.1)      | record field                          |
|-------------------------------------|---------------------------------------|
| ``id``                              | ``user_id``                           |
| ``userName``                        | ``username``                          |
| ``displayName`` (else name.formatted, else given + family) | ``display_name`` |
| ``name.givenName`` / ``familyName`` | ``given_name`` / ``family_name``      |
| ``emails`` (primary per §2.4)       | ``email``, ``emails``                 |
| ``phoneNumbers`` (primary)          | ``phone``                             |
| ``active``                          | ``active`` (absent = true)            |
| ``userType``                        | ``state`` (with active: active/inactive) |
| ``locale`` / ``preferredLanguage``  | ``locale``                            |
| ``meta.lastModified``               | ``updated_at``                        |
| ``meta.version``                    | ``source_version``                    |
| everything else (name.middleName, honorifics, nickName, title, timezone, addresses, photos, externalId, the enterprise extension: employeeNumber, costCenter, organization, division, department, manager) | kept in ``raw`` |
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from yarl import URL

from syncd.config import ScimConfig, read_secret
from syncd.errors import MalformedResponse
from syncd.http import Auth, BearerToken, ProviderClient
from syncd.identity import Email, Identity, primary_email
from syncd.jsonutil import loads
from syncd.providers.base import (
    check_scim_list,
    config_url,
    document,
    get_json,
    is_scim_not_found,
    json_kind,
    obj,
    user_url,
)
from syncd.timeutil import parse_rfc3339

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def scim_emails(doc: dict[str, Any]) -> tuple[Email, ...]:
    out = []
    for e in doc.get("emails") or ():
        if isinstance(e, dict) and e.get("value"):
            out.append(
                Email(
                    value=str(e["value"]),
                    type=e.get("type"),
                    primary=bool(e.get("primary")) if "primary" in e else None,
                )
            )
    return tuple(out)


def _primary_value(items: Any) -> str | None:
    items = [i for i in (items or ()) if isinstance(i, dict) and i.get("value")]
    for i in items:
        if i.get("primary"):
            return str(i["value"])
    return str(items[0]["value"]) if items else None


def scim_fields(doc: Any) -> dict[str, Any]:
    """The record fields of a SCIM 2 User resource (keyword arguments of Identity)."""
    doc = document(doc)
    if not doc.get("id"):
        raise MalformedResponse("SCIM resource has no id")
    name = obj(doc, "name")
    given, family = name.get("givenName"), name.get("familyName")
    display = (
        doc.get("displayName") or name.get("formatted") or (" ".join(p for p in (given, family) if p) or None)
    )
    emails = scim_emails(doc)
    primary = primary_email(emails)
    active = doc.get("active")
    active = True if active is None else bool(active)
    meta = obj(doc, "meta")
    return {
        "user_id": str(doc["id"]),
        "username": doc.get("userName"),
        "display_name": display,
        "given_name": given,
        "family_name": family,
        "email": primary.value if primary else None,
        "emails": emails,
        "phone": _primary_value(doc.get("phoneNumbers")),
        "active": active,
        "state": "active" if active else "inactive",
        "locale": doc.get("locale") or doc.get("preferredLanguage"),
        "updated_at": parse_rfc3339(meta.get("lastModified")),
        "source_version": meta.get("version"),
        "kind": "human",
        "raw": doc,
    }


def normalize(doc: Any) -> Identity:
    return Identity(**scim_fields(doc))


def error_detail(body: bytes) -> str | None:
    """RFC 7644 §3.12: ``{"schemas": [...Error], "status": "404", "detail": ...}``."""
    if not body.strip():
        return None
    doc = loads(body)
    if isinstance(doc, dict):
        detail = doc.get("detail") or doc.get("message")
        if detail:
            scim_type = doc.get("scimType")
            return f"{detail} ({scim_type})" if scim_type else str(detail)
    return None


def is_not_found(headers: Mapping[str, str], body: bytes) -> bool:
    """RFC 7644 §3.12's error with ``status`` 404 (``"404"`` or ``404``); any
    other 404 (a proxy's page, a wrong base_url path) is not "no such user"."""
    return is_scim_not_found(headers, body)


def make_auth(config: ScimConfig) -> Auth:
    return BearerToken(read_secret(config, "token_env", "token_file") or "")


async def list_scim_ids(client: ProviderClient, users_url: URL, page: int = 100) -> AsyncIterator[str]:
    """RFC 7644 §3.4.2.4 pagination: startIndex is 1-based."""
    start = 1
    while True:
        doc = document(
            await get_json(client, users_url, params={"startIndex": str(start), "count": str(page)})
        )
        resources = doc.get("Resources") or []
        if not isinstance(resources, list):
            raise MalformedResponse(f"SCIM ListResponse Resources is {json_kind(resources)}, not an array")
        for r in resources:
            if isinstance(r, dict) and r.get("id"):
                yield str(r["id"])
        total = int(doc.get("totalResults") or 0)
        start += len(resources)
        if not resources or start > total:
            return


class ScimProvider:
    type: ClassVar[str] = "scim"
    default_ignore_fields: ClassVar[tuple[str, ...]] = ()
    error_detail = staticmethod(error_detail)
    not_found = staticmethod(is_not_found)
    tracking_header: ClassVar[str | None] = None
    make_auth = staticmethod(make_auth)

    def __init__(self, config: ScimConfig, client: ProviderClient) -> None:
        self.config = config
        self.client = client
        self.users_url = config_url(config.base_url, "Users", key="base_url")

    async def fetch(self, user_id: str) -> Identity:
        url = user_url(self.users_url, user_id, self.config.name)
        return normalize(await get_json(self.client, url))

    async def check(self) -> str:
        return await check_scim_list(self.client, self.users_url, normalize)

    def list_ids(self) -> AsyncIterator[str]:
        return list_scim_ids(self.client, self.users_url)
