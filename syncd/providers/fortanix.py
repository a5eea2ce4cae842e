"""Fortanix DSM: ``GET {base_url}/sys/v1/users/{id}?with_groups=…``.

Session auth: ``POST /sys/v1/session/auth`` with ``Authorization: Basic <app
API key>`` (already base64, sent as is) or Basic ``email:password`` followed
by ``POST /sys/v1/session/select_account``. App tokens expire after ~10
minutes idle: the shared HTTP layer renews once on 401.

| Fortanix field                          | record field                            |
|-----------------------------------------|-----------------------------------------|
| ``user_id``                             | ``user_id``                             |
| ``user_email``                          | ``username``, ``email``, ``emails``     |
| ``email_verified``                      | ``email_verified``                      |
| ``first_name`` / ``last_name``          | ``given_name`` / ``family_name``, ``display_name`` |
| ``account_role`` STATEENABLED / PENDINGINVITE | ``active``, ``state`` (enabled / pending_invite / disabled) |
| ``created_at``, ``last_logged_in_at`` (compact ``%Y%m%dT%H%M%SZ``) | raw (``last_logged_in_at`` ignored for diffing by default: it moves on every login) |
| roles in account_role, groups, explicit_groups, description, dependent_services, has_account, has_password, mfa_devices, u2f_devices, new_email, self_provisioned | kept in ``raw`` |

No change marker and no ETag: the content is diffed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import aiohttp
from pydantic import AfterValidator, model_validator

from syncd.configbase import Model, ProviderBase, at_most_one, path_segment_id, read_secret
from syncd.errors import MalformedResponse, ProviderError
from syncd.http import Request, TokenFlow
from syncd.model.identity import Email, Identity
from syncd.model.listing import Cursor, ListingIncomplete, ListSettings, Page
from syncd.providers.base import ProviderType
from syncd.providers.check import CheckFailed
from syncd.providers.documents import describe, document, json_error, json_kind, media_type
from syncd.providers.urls import config_url, user_url

#: users asked for per page of a listing
PAGE = 100


class FortanixGroup(Model):
    """Fortanix discovery's scope: the members of one group."""

    group_id: Annotated[str, AfterValidator(path_segment_id)]


class FortanixConfig(ProviderBase):
    type: Literal["fortanix"]
    discover_filter: FortanixGroup | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    email: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    account_id: str | None = None
    with_groups: Literal["all", "explicit_only", "none"] = "all"

    @model_validator(mode="after")
    def _auth(self) -> FortanixConfig:
        at_most_one(self, "api_key_env", "api_key_file")
        at_most_one(self, "password_env", "password_file")
        has_key = bool(self.api_key_env or self.api_key_file)
        has_user = self.email is not None
        if has_key == has_user:
            raise ValueError("set either api_key_env/api_key_file, or email with password_env/_file")
        if has_user and not (self.password_env or self.password_file):
            raise ValueError("email needs password_env or password_file")
        if has_user and not self.account_id:
            raise ValueError("a user session (email) needs account_id")
        return self


def normalize(doc: Any) -> Identity:
    doc = document(doc)
    if not doc.get("user_id"):
        raise MalformedResponse("Fortanix user has no user_id")
    account_role = doc.get("account_role") or ()
    roles = [account_role] if isinstance(account_role, str) else [str(r) for r in account_role]
    if "STATEENABLED" in roles:
        state, active = "enabled", True
    elif "PENDINGINVITE" in roles:
        state, active = "pending_invite", False
    else:
        state, active = "disabled", False
    email = doc.get("user_email") or None
    verified = doc.get("email_verified")
    given, family = doc.get("first_name") or None, doc.get("last_name") or None
    return Identity(
        user_id=str(doc["user_id"]),
        username=email,
        display_name=" ".join(p for p in (given, family) if p) or None,
        given_name=given,
        family_name=family,
        email=email,
        email_verified=bool(verified) if verified is not None else None,
        emails=(Email(value=email, primary=True, verified=verified),) if email else (),
        active=active,
        state=state,
        kind="human",
        raw=doc,
    )


def error_detail(body: bytes) -> str | None:
    """Fortanix error bodies are plain text."""
    text = body.decode("utf-8", "replace").strip()
    return text[:300] or None


#: Fortanix's "no such user" names the user: "user not found", "User does not exist"
_USER_NOT_FOUND = re.compile(
    r"\buser\b[^\n]{0,60}?\b(?:not found|does not exist|doesn't exist|not exist)\b|\bno such user\b",
    re.IGNORECASE,
)
#: a not-found line is short; a longer 404 body is a page, not Fortanix's answer
_MAX_NOT_FOUND_BODY = 512


def is_not_found(headers: Mapping[str, str], body: bytes) -> bool:
    """Fortanix answers errors in plain text (NOTES.md), so its "no such user"
    is told apart by what it says: one short line naming the user ("user not
    found"). An HTML page, a framework's generic ``404: Not Found`` or ``404
    page not found`` (a wrong base_url path), a 404 about something else
    ("sobject does not exist") are not; nor is an empty body. A JSON
    ``{"message": …}`` is read the same way."""
    kind = media_type(headers)
    if kind in ("text/html", "application/xhtml+xml") or len(body) > _MAX_NOT_FOUND_BODY:
        return False
    if kind == "application/json" or kind.endswith("+json"):
        doc = json_error(headers, body)
        text = doc.get("message") if doc is not None else None
        if not isinstance(text, str):
            return False
    else:
        text = body.decode("utf-8", "replace")
    text = text.strip()
    if not text or "\n" in text or "<" in text:
        return False
    return _USER_NOT_FOUND.search(text) is not None


class Session(TokenFlow):
    """``/sys/v1/session/auth`` (+ ``select_account`` for a user session)."""

    def __init__(self, config: FortanixConfig) -> None:
        super().__init__(config.name)
        self.base = config.base_url
        self.url = f"{self.base}/sys/v1/session/auth"
        self.api_key = read_secret(config, "api_key_env", "api_key_file")
        self.email = config.email
        self.password = read_secret(config, "password_env", "password_file") if config.email else None
        self.account_id = config.account_id

    async def obtain(self, session: aiohttp.ClientSession) -> tuple[str, float | None]:
        url = self.url
        if self.api_key:
            doc = await self.post_token(session, url, headers={"Authorization": f"Basic {self.api_key}"})
        else:
            doc = await self.post_token(session, url, basic=(self.email or "", self.password or ""))
        token = doc["access_token"]
        if self.account_id and not self.api_key:
            await self.post_token_select(session, token)
        return token, doc.get("expires_in")

    async def post_token_select(self, session: aiohttp.ClientSession, token: str) -> None:
        # a 4xx refuses the account (AuthError); a 5xx is the server's trouble
        # (TransientError, retried), not our credentials'
        await self.post_checked(
            session,
            f"{self.base}/sys/v1/session/select_account",
            what="select_account",
            json={"acct_id": self.account_id},
            headers={"Authorization": f"Bearer {token}"},
        )


def make_auth(config: FortanixConfig) -> Session:
    return Session(config)


class FortanixAdapter:
    def __init__(self, config: FortanixConfig) -> None:
        self.config = config
        self.users_url = config_url(config.base_url, "sys", "v1", "users", key="base_url")
        self.default_headers: dict[str, str] = {}

    normalize = staticmethod(normalize)

    def user_request(self, user_id: str) -> Request:
        url = user_url(self.users_url, user_id, self.config.name)
        return Request("GET", url, params={"with_groups": self.config.with_groups})

    def check_request(self) -> Request:
        """``GET /sys/v1/users?limit=1``: the session, the path and the API."""
        return Request("GET", self.users_url.update_query({"limit": "1"}), kind="check")

    def check_answer(self, request: Request, page: Any) -> str:
        """A JSON array (of one user that maps, if the account has any)."""
        url = request.url
        if not isinstance(page, list):
            raise CheckFailed(url, f"expected a JSON array of users, got {describe(page)}")
        if page:
            try:
                normalize(page[0])
            except ProviderError as exc:
                raise CheckFailed(url, f"the listed user does not map: {exc}") from exc
        return f"GET {url}: a JSON array of users ({len(page)} listed)"

    def list_settings_request(self) -> None:
        return None

    def list_settings(self, doc: Any) -> ListSettings:
        return ListSettings(page_size=PAGE)

    def list_request(self, cursor: Cursor, settings: ListSettings) -> Request:
        """``GET /sys/v1/users?limit=…&start=<last user_id>&sort=user_id:asc`` → a bare array."""
        params = {"limit": str(settings.page_size), "sort": "user_id:asc"}
        if cursor:
            params["start"] = str(cursor)
        if self.config.discover_filter is not None:
            params["group_id"] = self.config.discover_filter.group_id
        return Request("GET", self.users_url, params=params, kind="list")

    def list_page(self, doc: Any, cursor: Cursor, settings: ListSettings) -> Page:
        return keyset_page(doc, None if cursor is None else str(cursor), settings.page_size)


def keyset_page(doc: Any, after: str | None, page_size: int) -> Page:
    """A page of ``sort=user_id:asc`` keyset paging: ids ascending, after the
    cursor (an answer that starts at the cursor itself is read as inclusive);
    the listing ends with an empty page.
    Ids out of order or not after the cursor mean the server ignored ``start``
    or ``sort``: the listing can't be complete."""
    if not isinstance(doc, list):
        raise MalformedResponse(f"expected a JSON array of users, got {json_kind(doc)}")
    ids = []
    for n, user in enumerate(doc):
        uid = user.get("user_id") if isinstance(user, dict) else None
        if not isinstance(uid, str) or not uid:
            raise MalformedResponse(f"user {n} of the page after {after!r} has no user_id")
        ids.append(uid)
    if after is not None and ids and ids[0] == after:
        ids = ids[1:]
    previous = after
    for uid in ids:
        if previous is not None and uid <= previous:
            raise ListingIncomplete(
                f"the page after {after!r} lists {uid!r} after {previous!r}: the server ignores"
                " start or sort=user_id:asc"
            )
        previous = uid
    # no total to check against, and a server may cap the page silently: a
    # short page is not the end, only an empty one is (one request more)
    return Page(cursor=after, ids=tuple(ids), next=ids[-1] if ids else None)


PROVIDER = ProviderType(
    name="fortanix",
    config=FortanixConfig,
    adapter=FortanixAdapter,
    make_auth=make_auth,
    normalize=normalize,
    error_detail=error_detail,
    not_found=is_not_found,
    default_ignore_fields=("last_logged_in_at",),
)
