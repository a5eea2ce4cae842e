"""ZITADEL: ``GET {base_url}/v2/users/{id}`` (User Service v2).

JSON quirks (grpc-gateway): zero values are omitted (``phone: {}``), uint64
as strings (``details.sequence``), RFC 3339 with nanoseconds. Errors are
``{"code": 5, "message": "...", "details": [...]}`` with the HTTP status
following the gRPC code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import aiohttp
from pydantic import AfterValidator, model_validator

from syncd.configbase import ProviderBase, at_most_one, read_secret
from syncd.errors import MalformedResponse, ProviderError
from syncd.http import Auth, BearerToken, Request, TokenFlow
from syncd.jsonutil import loads
from syncd.model.identity import Email, Identity
from syncd.model.listing import Cursor, ListSettings, Page
from syncd.providers.base import ProviderType, SearchBy, has_value
from syncd.providers.check import CheckFailed
from syncd.providers.documents import as_count, describe, document, json_error, json_kind, obj, text_value
from syncd.providers.urls import config_url, user_url
from syncd.timeutil import parse_rfc3339

#: users asked for per page of a listing: the User Service's maximum
PAGE = 1000


def _query(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) != 1 or not next(iter(value)).endswith("Query"):
        raise ValueError('each entry is one ListUsers query object, e.g. {typeQuery = {type = "TYPE_HUMAN"}}')
    return value


ZitadelQuery = Annotated[dict[str, Any], AfterValidator(_query)]


class ZitadelConfig(ProviderBase):
    type: Literal["zitadel"]
    client_id: str | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    #: sent as ``x-zitadel-orgid``
    org_id: str | None = None
    scope: str = "openid urn:zitadel:iam:org:project:id:zitadel:aud"
    #: discovery's scope: ListUsers query objects, ANDed
    #: (``[{typeQuery = {type = "TYPE_HUMAN"}}]``, ``organizationIdQuery``, …)
    discover_filter: tuple[ZitadelQuery, ...] | None = None

    @model_validator(mode="after")
    def _auth(self) -> ZitadelConfig:
        at_most_one(self, "client_secret_env", "client_secret_file")
        has_cc = self.client_id is not None
        if has_cc and not (self.client_secret_env or self.client_secret_file):
            raise ValueError("client_id needs client_secret_env or client_secret_file")
        if not has_cc and not (self.token_env or self.token_file):
            raise ValueError("set token_env/token_file, or client_id with client_secret_env/_file")
        return self


#: ``USER_STATE_*`` values that mean the user may sign in
_ACTIVE_STATES = {"USER_STATE_ACTIVE", "USER_STATE_INITIAL"}

#: what describes the answer rather than the user: its change markers, at
#: the top (GetUserByID) and in the user (issue #17). A difference in these
#: alone rewrites the mirror row quietly, no event
REPRESENTATION_FIELDS = (
    "details.sequence",
    "details.changeDate",
    "user.details.sequence",
    "user.details.changeDate",
    "updated_at",
    "source_version",
)


def normalize(doc: Any) -> Identity:
    """Map a GetUserByID response (``{"details":…, "user":…}``) to an Identity."""
    doc = document(doc)
    user = obj(doc, "user")
    if not user.get("userId"):
        raise MalformedResponse("ZITADEL answer has no user.userId")
    details = obj(user, "details") or obj(doc, "details")
    state = user.get("state") or "USER_STATE_UNSPECIFIED"
    common: dict[str, Any] = {
        "user_id": str(user["userId"]),
        "username": user.get("username") or user.get("preferredLoginName"),
        "state": state,
        "active": state in _ACTIVE_STATES,
        "updated_at": parse_rfc3339(details.get("changeDate")),
        "source_version": str(details["sequence"]) if details.get("sequence") is not None else None,
        # the organization the user belongs to (its id: ZITADEL has no name here)
        "organization": text_value(details.get("resourceOwner")),
        "raw": doc,
    }
    if "machine" in user:
        machine = obj(user, "machine")
        return Identity(**common, kind="machine", display_name=machine.get("name") or None)

    human = obj(user, "human")
    profile = obj(human, "profile")
    email = obj(human, "email")
    phone = obj(human, "phone")
    emails: tuple[Email, ...] = ()
    if email.get("email"):
        # isVerified omitted means false (proto3 zero value)
        emails = (Email(value=email["email"], primary=True, verified=bool(email.get("isVerified"))),)
    return Identity(
        **common,
        kind="human",
        display_name=profile.get("displayName") or None,
        given_name=profile.get("givenName") or None,
        family_name=profile.get("familyName") or None,
        email=email.get("email") or None,
        email_verified=bool(email.get("isVerified")) if email.get("email") else None,
        emails=emails,
        phone=phone.get("phone") or None,
        locale=profile.get("preferredLanguage") or None,
    )


def error_detail(body: bytes) -> str | None:
    doc = loads(body)
    if isinstance(doc, dict) and doc.get("message"):
        return str(doc["message"])
    return None


#: gRPC NOT_FOUND as grpc-gateway writes it (a number), or by name (connect)
_NOT_FOUND_CODES = (5, "5", "NOT_FOUND", "not_found")
#: ZITADEL's error id closing its messages: "User could not be found (QUERY-Dfbg2)"
_ERROR_ID = re.compile(r"\([A-Z]+-[A-Za-z0-9]+\)\s*$")


def is_not_found(headers: Mapping[str, str], body: bytes) -> bool:
    """ZITADEL's own NOT_FOUND: ``{"code": 5, "message": "… (QUERY-Dfbg2)",
    "details": [{"@type": "…zitadel.v1.ErrorDetail", "id": …}]}``. ``code`` 5
    alone is not enough: grpc-gateway answers a path it has no route for with
    ``{"code": 5, "message": "Not Found"}`` too, so ZITADEL's error detail or
    error id must be there as well."""
    doc = json_error(headers, body)
    if doc is None or isinstance(doc.get("code"), bool) or doc.get("code") not in _NOT_FOUND_CODES:
        return False
    details = doc.get("details")
    if isinstance(details, list) and any(
        isinstance(d, dict) and str(d.get("@type", "")).endswith("zitadel.v1.ErrorDetail") for d in details
    ):
        return True
    message = doc.get("message")
    return isinstance(message, str) and _ERROR_ID.search(message) is not None


class ClientCredentials(TokenFlow):
    """OAuth client credentials against ``{base_url}/oauth/v2/token``."""

    def __init__(self, config: ZitadelConfig) -> None:
        super().__init__(config.name)
        self.url = f"{config.base_url}/oauth/v2/token"
        self.client_id = config.client_id or ""
        self.secret = read_secret(config, "client_secret_env", "client_secret_file") or ""
        self.scope = config.scope

    async def obtain(self, session: aiohttp.ClientSession) -> tuple[str, float | None]:
        doc = await self.post_token(
            session,
            self.url,
            data={"grant_type": "client_credentials", "scope": self.scope},
            basic=(self.client_id, self.secret),
        )
        return doc["access_token"], doc.get("expires_in")


def make_auth(config: ZitadelConfig) -> Auth:
    if config.client_id:
        return ClientCredentials(config)
    return BearerToken(read_secret(config, "token_env", "token_file") or "")


class ZitadelAdapter:
    def __init__(self, config: ZitadelConfig) -> None:
        self.config = config
        self.users_url = config_url(config.base_url, "v2", "users", key="base_url")
        self.default_headers = {"x-zitadel-orgid": config.org_id} if config.org_id else {}

    normalize = staticmethod(normalize)

    def user_request(self, user_id: str) -> Request:
        return Request("GET", user_url(self.users_url, user_id, self.config.name))

    def check_request(self) -> Request:
        """The User Service's search, ``POST /v2/users`` with limit 1 (ListUsers,
        what discovery lists with): proves the token, the base_url and a grant
        to read users — not only the token's own user."""
        return Request(
            "POST", self.users_url, json={"query": {"offset": "0", "limit": 1, "asc": True}}, kind="check"
        )

    def check_answer(self, request: Request, answer: Any) -> str:
        """``details`` and a ``result`` array of v2 users."""
        url = request.url
        result = answer.get("result", []) if isinstance(answer, dict) else None
        if (
            not isinstance(answer, dict)
            or not isinstance(answer.get("details"), dict)
            or not isinstance(result, list)
        ):
            raise CheckFailed(
                url,
                f"expected a ZITADEL ListUsers answer (details, result), got {describe(answer)}",
                method="POST",
            )
        for user in result[:1]:
            try:
                normalize({"user": user})
            except ProviderError as exc:
                raise CheckFailed(url, f"not a ZITADEL v2 user in the result: {exc}", method="POST") from exc
        total = obj(answer, "details").get("totalResult", len(result))
        return f"POST {url}: a ZITADEL ListUsers answer ({total} user(s))"

    def list_settings_request(self) -> None:
        return None  # the reference fixes them: offset paging, limit at most 1000

    def list_settings(self, doc: Any) -> ListSettings:
        return ListSettings(page_size=PAGE)

    def list_request(self, cursor: Cursor, settings: ListSettings) -> Request:
        """ListUsers by creation date, oldest first: a user created while
        listing comes last, and the total it adds is noticed."""
        search = {
            "query": {"offset": str(cursor or 0), "limit": settings.page_size, "asc": True},
            "sortingColumn": "USER_FIELD_NAME_CREATION_DATE",
            "queries": list(self.config.discover_filter or ()),
        }
        return Request("POST", self.users_url, json=search, kind="list")

    def list_page(self, doc: Any, cursor: Cursor, settings: ListSettings) -> Page:
        return list_users_page(doc, int(cursor or 0))

    def batch_limit(self, settings: Any) -> int:
        return PAGE  # ListUsers' limit: at most 1000 ids per request

    def batch_request(self, user_ids: Sequence[str]) -> Request:
        """ListUsers with one ``inUserIdsQuery``."""
        search = {
            "query": {"offset": "0", "limit": len(user_ids), "asc": True},
            "queries": [{"inUserIdsQuery": {"userIds": list(user_ids)}}],
        }
        return Request("POST", self.users_url, json=search, kind="batch")

    def batch_answer(self, doc: Any) -> list[Any]:
        """Each ``result`` user as GetUserByID answers it: ``{"details", "user"}``
        (the by-id answer's top-level details are the user's own)."""
        return by_id_documents(list_users_result(document(doc)))

    def search_request(self, by: SearchBy, value: str) -> Request:
        """ListUsers with one ``userNameQuery`` or ``emailQuery``, ignoring case."""
        method = "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE"
        query = (
            {"userNameQuery": {"userName": value, "method": method}}
            if by == "username"
            else {"emailQuery": {"emailAddress": value, "method": method}}
        )
        return Request(
            "POST",
            self.users_url,
            json={"query": {"offset": "0", "limit": 10, "asc": True}, "queries": [query]},
            kind="search",
        )

    def search_answer(self, doc: Any, by: SearchBy, value: str) -> list[str]:
        users = (normalize({"user": user}) for user in list_users_result(document(doc)))
        return [found.user_id for found in users if has_value(found, by, value)]


def list_users_result(doc: dict[str, Any]) -> list[Any]:
    """A ListUsers answer's ``result`` (absent when it lists no one)."""
    result = doc.get("result") or []
    if not isinstance(result, list):
        raise MalformedResponse(f"ZITADEL ListUsers result is {json_kind(result)}, not an array")
    return result


def by_id_documents(users: list[Any]) -> list[Any]:
    """ListUsers' users as GetUserByID answers each: ``{"details", "user"}``
    (the by-id answer's top-level details are the user's own), so a user's
    hash is the same whichever request read it."""
    return [{"details": obj(u, "details"), "user": u} if isinstance(u, dict) else u for u in users]


def list_users_page(doc: Any, offset: int) -> Page:
    """``{"details": {"totalResult": "…"}, "result": [user, …]}``."""
    doc = document(doc)
    result = list_users_result(doc)
    total = as_count(obj(doc, "details").get("totalResult"))
    if total < 0:
        raise MalformedResponse(f"ZITADEL ListUsers answer without details.totalResult ({describe(doc)})")
    ids = []
    for n, user in enumerate(result):
        uid = user.get("userId") if isinstance(user, dict) else None
        if not isinstance(uid, str) or not uid:
            raise MalformedResponse(f"user {offset + n} of the listing has no userId")
        ids.append(uid)
    more = ids and offset + len(ids) < total
    return Page(
        cursor=offset,
        ids=tuple(ids),
        total=total,
        next=offset + len(ids) if more else None,
        documents=tuple(by_id_documents(result)),
    )


PROVIDER = ProviderType(
    name="zitadel",
    config=ZitadelConfig,
    adapter=ZitadelAdapter,
    make_auth=make_auth,
    normalize=normalize,
    error_detail=error_detail,
    not_found=is_not_found,
    representation_fields=REPRESENTATION_FIELDS,
)
