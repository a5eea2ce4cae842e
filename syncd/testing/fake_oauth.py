"""The fakes' OAuth 2.0 token endpoint (RFC 6749): the client credentials
grant (§4.4) and the refresh token grant (§6), the client authenticated by
HTTP Basic or in the form (§2.3.1), refresh tokens rotated and the old one
revoked when asked (what a real OAuth2 server with SCIM does)."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from aiohttp import web

if TYPE_CHECKING:
    from syncd.testing.fake import FakeProvider


@dataclass
class Grant:
    """One token request as the fake saw it."""

    grant_type: str
    #: how the client authenticated: "basic", "post" or None
    client_auth: str | None
    refresh_token: str | None = None
    scope: str | None = None
    audience: str | None = None
    #: the RFC 6749 §5.2 error answered, None: tokens issued
    error: str | None = None


#: ``(status, RFC 6749 error code, description) -> response``: a dialect's error shape
ErrorShape = Callable[[int, str, str], web.Response]


def rfc_error(status: int, code: str, description: str) -> web.Response:
    """RFC 6749 §5.2: ``{"error": "invalid_grant", "error_description": …}``."""
    return web.json_response({"error": code, "error_description": description}, status=status)


@dataclass
class FakeOAuth:
    #: None: any client id
    client_id: str | None = None
    #: None: the fake provider's ``token``
    client_secret: str | None = None
    #: how the client must authenticate ("any": either)
    client_auth: Literal["basic", "post", "any"] = "any"
    #: answer a refresh with a new refresh token and revoke the one used
    rotate: bool = False
    #: the refresh tokens that are valid; empty: any is (and is not rotated)
    refresh_tokens: set[str] = field(default_factory=set)
    #: every refresh token issued so far, in order
    issued_refresh: list[str] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)

    def issue_refresh(self) -> str:
        token = f"refresh-{random.getrandbits(64):016x}"
        self.refresh_tokens.add(token)
        self.issued_refresh.append(token)
        return token

    async def handle(self, fake: FakeProvider, request: web.Request, error: ErrorShape) -> web.Response:
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        grant = Grant(
            grant_type=fields.get("grant_type", ""),
            client_auth=None,
            refresh_token=fields.get("refresh_token"),
            scope=fields.get("scope"),
            audience=fields.get("audience"),
        )
        self.grants.append(grant)
        refused = self._refusal(fake, request, fields, grant)
        if refused is not None:
            grant.error = refused[1]
            return error(*refused)
        body: dict[str, Any] = {
            "access_token": fake.issue_token(),
            "token_type": "Bearer",
            "expires_in": fake.token_lifetime,
        }
        if grant.grant_type == "refresh_token":
            used = grant.refresh_token or ""
            if self.rotate:
                self.refresh_tokens.discard(used)  # revoked (RFC 6749 §6)
                body["refresh_token"] = self.issue_refresh()
            else:
                body["refresh_token"] = used
        return web.json_response(body)

    def _refusal(
        self, fake: FakeProvider, request: web.Request, fields: dict[str, str], grant: Grant
    ) -> tuple[int, str, str] | None:
        secret = self.client_secret if self.client_secret is not None else fake.token
        sent = _basic(request.headers.get("Authorization", ""))
        if sent is not None:
            grant.client_auth = "basic"
        elif "client_secret" in fields:
            grant.client_auth = "post"
            sent = (fields.get("client_id", ""), fields["client_secret"])
        if sent is None or (self.client_auth != "any" and grant.client_auth != self.client_auth):
            return 401, "invalid_client", "client authentication failed"
        if sent[1] != secret or self.client_id not in (None, sent[0]):
            return 401, "invalid_client", "unknown client or wrong secret"
        if grant.grant_type == "client_credentials":
            return None
        if grant.grant_type != "refresh_token":
            return 400, "unsupported_grant_type", grant.grant_type
        if not grant.refresh_token:
            return 400, "invalid_request", "refresh_token is required"
        if self.refresh_tokens and grant.refresh_token not in self.refresh_tokens:
            return 400, "invalid_grant", "the refresh token is invalid, expired or revoked"
        return None


def _basic(header: str) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: Basic of the form-urlencoded client id and secret."""
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[len("Basic ") :]).decode().partition(":")
    except ValueError:
        return None
    return unquote(user), unquote(password)
