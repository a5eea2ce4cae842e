"""Any SCIM 2 server (RFC 7643/7644): ``GET {base_url}/Users/{id}``, with a
bearer token, a token in a header of its own, HTTP Basic, or OAuth2 (client
credentials, or a refresh token): ``syncd.providers.auth``.

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
| enterprise ``employeeNumber``, ``department``, ``costCenter``, ``organization``, ``division``, ``manager.value`` | ``employee_number``, ``department``, ``cost_center``, ``organization``, ``division``, ``manager_id`` |
| everything else (name.middleName, honorifics, nickName, title, timezone, addresses, photos, externalId, the rest of manager) | kept in ``raw`` |

Attribute names are read in any case (RFC 7643 §2.1): ``username`` and
``USERNAME`` are ``userName``. ``raw`` keeps the document as it came.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator
from yarl import URL

from syncd.configbase import ProviderBase, read_secret
from syncd.errors import ConfigError, MalformedResponse
from syncd.http import Auth, BearerToken, Request
from syncd.jsonutil import loads
from syncd.model.identity import Email, Identity, primary_email
from syncd.model.listing import Cursor, FeedPage, ListSettings, Page
from syncd.providers.auth import AuthConfig
from syncd.providers.auth import make_auth as scheme_auth
from syncd.providers.base import ProviderType, SearchBy, has_value
from syncd.providers.check import scim_list_answer, scim_list_request
from syncd.providers.documents import (
    as_count,
    ci_get,
    describe,
    document,
    is_scim_not_found,
    json_kind,
    obj,
    text_value,
)
from syncd.providers.urls import config_url, user_url
from syncd.timeutil import parse_rfc3339

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#: what describes a SCIM representation rather than the user (issue #17): a
#: difference in these alone rewrites the mirror row quietly, no event
REPRESENTATION_FIELDS = (
    "meta.location",
    "meta.lastModified",
    "meta.version",
    "meta.created",
    "updated_at",
    "source_version",
)
#: users asked for per page of a listing (less when the server caps lower)
PAGE = 100
#: ids asked for in one batch read: they go in the URL (100 UUIDs in an
#: ``id eq … or …`` filter are some 6 KB, under the usual 8 KB URL limits)
BATCH_IDS = 100


def _filter_expression(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty (leave it out to list every user)")
    if any(ord(c) < 0x20 for c in value):
        raise ValueError("contains a control character")
    return value


#: a SCIM filter expression (RFC 7644 §3.4.2.2), as ``discover_filter``
ScimFilter = Annotated[str, AfterValidator(_filter_expression)]


class ScimConfig(AuthConfig):
    type: Literal["scim"]
    has_feed = True
    #: discovery's scope: a SCIM filter (``userType eq "Employee"``)
    discover_filter: ScimFilter | None = None


def ci_obj(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """``doc[name]`` (the name in any case) when it is a JSON object, else ``{}``."""
    value = ci_get(doc, name)
    return value if isinstance(value, dict) else {}


#: no such key (``ci_get``'s default where null and absent differ)
_ABSENT = object()


def _multi(items: Any) -> list[dict[str, Any]]:
    """A multi-valued attribute's items (RFC 7643 §2.4) that have a value."""
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and ci_get(i, "value")]


def scim_emails(doc: dict[str, Any]) -> tuple[Email, ...]:
    out = []
    for e in _multi(ci_get(doc, "emails")):
        primary = ci_get(e, "primary", _ABSENT)
        out.append(
            Email(
                value=str(ci_get(e, "value")),
                type=ci_get(e, "type"),
                primary=None if primary is _ABSENT else bool(primary),
            )
        )
    return tuple(out)


def _primary_value(items: Any) -> str | None:
    values = _multi(items)
    for i in values:
        if ci_get(i, "primary"):
            return str(ci_get(i, "value"))
    return str(ci_get(values[0], "value")) if values else None


#: the enterprise extension's attributes and their record fields
ENTERPRISE_FIELDS = {
    "employee_number": "employeeNumber",
    "department": "department",
    "cost_center": "costCenter",
    "organization": "organization",
    "division": "division",
}


def enterprise_fields(doc: dict[str, Any]) -> dict[str, str | None]:
    """RFC 7643 §4.3's enterprise extension as record fields."""
    ext = ci_obj(doc, ENTERPRISE)
    if not ext:
        return {}
    fields = {field: text_value(ci_get(ext, name)) for field, name in ENTERPRISE_FIELDS.items()}
    manager = ci_get(ext, "manager")
    fields["manager_id"] = text_value(ci_get(manager, "value") if isinstance(manager, dict) else manager)
    return fields


def scim_fields(doc: Any) -> dict[str, Any]:
    """The record fields of a SCIM 2 User resource (keyword arguments of
    Identity). Attribute names are matched exactly, else in any case (RFC
    7643 §2.1): exact first, as nearly every server sends them so."""
    doc = document(doc)
    uid = ci_get(doc, "id")
    if not uid:
        raise MalformedResponse("SCIM resource has no id")
    name = ci_obj(doc, "name")
    given, family = ci_get(name, "givenName"), ci_get(name, "familyName")
    display = (
        ci_get(doc, "displayName")
        or ci_get(name, "formatted")
        or (" ".join(p for p in (given, family) if p) or None)
    )
    emails = scim_emails(doc)
    primary = primary_email(emails)
    active = ci_get(doc, "active")
    active = True if active is None else bool(active)
    meta = ci_obj(doc, "meta")
    return {
        "user_id": str(uid),
        "username": ci_get(doc, "userName"),
        "display_name": display,
        "given_name": given,
        "family_name": family,
        "email": primary.value if primary else None,
        "emails": emails,
        "phone": _primary_value(ci_get(doc, "phoneNumbers")),
        "active": active,
        "state": "active" if active else "inactive",
        "locale": ci_get(doc, "locale") or ci_get(doc, "preferredLanguage"),
        **enterprise_fields(doc),
        "updated_at": parse_rfc3339(ci_get(meta, "lastModified")),
        "source_version": ci_get(meta, "version"),
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


def bearer_auth(config: ProviderBase) -> Auth:
    """A static bearer token (``token_env``/``token_file``): Wacht's only scheme."""
    return BearerToken(read_secret(config, "token_env", "token_file") or "")


def make_auth(config: ScimConfig) -> Auth:
    """The scheme configured (``syncd.providers.auth``)."""
    return scheme_auth(config)


class ScimUsers:
    """The requests and pages of a SCIM 2 ``/Users`` endpoint (RFC 7644), for
    every adapter whose users live at one (SCIM, Wacht, Webex)."""

    normalize: Callable[[Any], Identity]

    def __init__(self, config: ProviderBase, users_url: URL) -> None:
        self.config = config
        self.users_url = users_url
        self.default_headers: dict[str, str] = {}

    def user_request(self, user_id: str) -> Request:
        return Request("GET", user_url(self.users_url, user_id, self.config.name))

    def check_request(self) -> Request:
        return scim_list_request(self.users_url)

    def check_answer(self, request: Request, doc: Any) -> str:
        return scim_list_answer(request, doc, self.normalize)

    def check_fallback_request(self) -> Request:
        """The list with no paging parameters, for a server that chokes on
        ``?startIndex=1&count=1`` (one real server answers it with a 500)."""
        return Request("GET", self.users_url, kind="check")

    def list_settings_request(self) -> Request:
        """RFC 7643 §5: whether the server supports ``filter``, and its cap."""
        return Request("GET", self.users_url.parent / "ServiceProviderConfig", kind="settings")

    def list_settings(self, doc: Any) -> ListSettings:
        """The page size (at most ``filter.maxResults``). A ``discover_filter``
        needs ``filter.supported``: real servers answer a filter they don't
        support with every user, or none, and 200."""
        spc = obj(doc, "filter") if isinstance(doc, dict) else {}
        cap = as_count(spc.get("maxResults"))
        expression = self.config.discover_filter
        if expression and spc.get("supported") is not True:
            said = "says filter.supported is not true" if isinstance(doc, dict) else "could not be read"
            raise ConfigError(
                f"provider {self.config.name!r}: discover_filter is set but the server's"
                f" ServiceProviderConfig {said}; a server without filter support may answer"
                " every user (or none), so the listing would not be the scope asked for"
            )
        return ListSettings(page_size=min(PAGE, cap) if cap > 0 else PAGE)

    def list_request(self, cursor: Cursor, settings: ListSettings) -> Request:
        """RFC 7644 §3.4.2.4 pagination: ``startIndex`` (the cursor) is 1-based."""
        params = {"startIndex": str(cursor or 1), "count": str(settings.page_size)}
        if self.config.discover_filter:
            params["filter"] = self.config.discover_filter
        return Request("GET", self.users_url, params=params, kind="list")

    #: the listing's resources are the by-id read's representation (RFC 7644
    #: §3.4.2): its pages refresh the users they list
    lists_documents: bool = True

    def list_page(self, doc: Any, cursor: Cursor, settings: ListSettings) -> Page:
        return scim_list_page(doc, int(cursor or 1), documents=self.lists_documents)

    def batch_limit(self, settings: Any) -> int:
        """``id eq … or …`` needs ``filter.supported``; at most its
        ``maxResults`` (and ``pagination.maxPageSize``), and at most
        ``BATCH_IDS`` (the ids go in the URL)."""
        spc = obj(settings, "filter") if isinstance(settings, dict) else {}
        if spc.get("supported") is not True:
            return 0
        # RFC 9865's pagination.maxPageSize caps a page below maxResults
        paging = obj(settings, "pagination") if isinstance(settings, dict) else {}
        caps = [c for c in (as_count(spc.get("maxResults")), as_count(paging.get("maxPageSize"))) if c > 0]
        return min([BATCH_IDS, *caps])

    def batch_request(self, user_ids: Sequence[str]) -> Request:
        """RFC 7644 §3.4.2.2: ``filter=id eq "a" or id eq "b" …``."""
        expression = " or ".join(f'id eq "{_quoted(uid)}"' for uid in user_ids)
        params = {"filter": expression, "startIndex": "1", "count": str(len(user_ids))}
        return Request("GET", self.users_url, params=params, kind="batch")

    def batch_answer(self, doc: Any) -> list[Any]:
        return scim_resources(document(doc))

    def search_request(self, by: SearchBy, value: str) -> Request:
        """``filter=userName eq "…"`` or ``emails.value eq "…"`` (RFC 7644 §3.4.2.2)."""
        expression = f'{SCIM_SEARCH[by]} eq "{_quoted(value)}"'
        return Request("GET", self.users_url, params={"filter": expression, "count": "10"}, kind="search")

    def search_answer(self, doc: Any, by: SearchBy, value: str) -> list[str]:
        resources = scim_resources(document(doc))
        return [found.user_id for found in map(self.normalize, resources) if has_value(found, by, value)]


def _quoted(value: str) -> str:
    """``value`` inside a filter's double quotes (RFC 7644 §3.4.2.2, JSON string rules)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


#: the SCIM attribute of what an admin looks a user up by
SCIM_SEARCH = {"username": "userName", "email": "emails.value"}


def scim_resources(doc: dict[str, Any]) -> list[Any]:
    """A ListResponse's ``Resources`` (absent or null when it lists no one)."""
    resources = ci_get(doc, "Resources") or []
    if not isinstance(resources, list):
        raise MalformedResponse(f"SCIM ListResponse Resources is {json_kind(resources)}, not an array")
    return resources


def scim_list_page(doc: Any, start: int, *, documents: bool = False) -> Page:
    """A ListResponse (RFC 7644 §3.4.2): ``totalResults`` is required (without
    it a silently capped page would end the listing early), every resource
    needs its ``id``. ``documents``: keep the resources (as the by-id read
    gives them) for the page's refresh."""
    doc = document(doc)
    resources = scim_resources(doc)
    total = as_count(ci_get(doc, "totalResults"))
    if total < 0:
        raise MalformedResponse(f"SCIM ListResponse without a totalResults count ({describe(doc)})")
    ids = []
    for n, resource in enumerate(resources):
        uid = ci_get(resource, "id") if isinstance(resource, dict) else None
        if not isinstance(uid, str) or not uid:
            raise MalformedResponse(f"resource {start + n} of the listing has no id")
        ids.append(uid)
    echoed = as_count(ci_get(doc, "startIndex"))
    listed_to = start - 1 + len(ids)
    return Page(
        cursor=start,
        ids=tuple(ids),
        echoed=echoed if echoed >= 0 else None,
        total=total,
        next=start + len(ids) if ids and listed_to < total else None,
        documents=tuple(resources) if documents else (),
    )


class ScimFeed(ScimUsers):
    """The change feed of a SCIM server (``FeedReader``): users whose
    ``meta.lastModified`` is after a time, by filter (RFC 7644 §3.4.2.2;
    ZITADEL's SCIM server has it) or, where the server can sort by it but
    not filter (Webex), newest first."""

    feed_sorted = False

    def feed_request(self, cursor: Cursor, settings: ListSettings, since: datetime) -> Request:
        params = {"startIndex": str(cursor or 1), "count": str(settings.page_size)}
        if self.feed_sorted:
            params |= {"sortBy": "meta.lastModified", "sortOrder": "descending"}
        else:
            params["filter"] = f'meta.lastModified gt "{rfc3339(since)}"'
        return Request("GET", self.users_url, params=params, kind="feed")

    def feed_page(self, doc: Any, cursor: Cursor, settings: ListSettings) -> FeedPage:
        start = int(cursor or 1)
        page = scim_list_page(doc, start)
        resources = scim_resources(document(doc))
        changes = tuple((uid, _last_modified(r)) for uid, r in zip(page.ids, resources, strict=True))
        return FeedPage(changes=changes, next=page.next)


def _last_modified(resource: dict[str, Any]) -> datetime | None:
    value = ci_get(ci_obj(resource, "meta"), "lastModified")
    return parse_rfc3339(value) if isinstance(value, str) else None


def rfc3339(at: datetime) -> str:
    """``2026-01-11T17:38:31.605Z``: UTC, milliseconds (what SCIM servers emit)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


class ScimAdapter(ScimFeed):
    normalize = staticmethod(normalize)

    def __init__(self, config: ScimConfig) -> None:
        super().__init__(config, config_url(config.base_url, "Users", key="base_url"))


PROVIDER = ProviderType(
    name="scim",
    config=ScimConfig,
    adapter=ScimAdapter,
    make_auth=make_auth,
    normalize=normalize,
    error_detail=error_detail,
    not_found=is_not_found,
    representation_fields=REPRESENTATION_FIELDS,
)
