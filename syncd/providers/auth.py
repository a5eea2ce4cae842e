"""The auth schemes a SCIM server (generic ``scim``, ``webex``) may use, as
config keys, their validation, and the ``Auth`` they build. Every secret is
given by reference (``*_env`` / ``*_file``).

| scheme                         | keys                                                                  |
|--------------------------------|-----------------------------------------------------------------------|
| bearer token (RFC 6750)        | ``token_env`` / ``token_file``                                        |
| a token in a header of its own | ``auth_header`` + ``token_env`` / ``token_file``                      |
| HTTP Basic (RFC 7617)          | ``username`` + ``password_env`` / ``password_file``                   |
| OAuth2 client credentials      | ``token_url`` + ``client_id`` + ``client_secret_env`` / ``_file`` (+ ``scope``, ``audience``, ``token_auth``) |
| OAuth2 refresh token           | the same + ``refresh_token_env`` / ``_file`` (rotations kept in the database) |
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, model_validator

from syncd.configbase import ProviderBase, at_most_one, read_secret
from syncd.http import Auth, BasicAuth, BearerToken, HeaderToken
from syncd.http.oauth2 import ClientCredentials, OAuthClient, RefreshGrant

#: RFC 9110 §5.6.2 ``token``: what a field name may be
_FIELD_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: headers that frame or route the request: never a place for a token
_RESERVED = {"host", "content-length", "content-type", "transfer-encoding", "connection", "cookie"}


def _header_name(value: str) -> str:
    if not _FIELD_NAME.match(value):
        raise ValueError(f"{value!r} is not an HTTP header name")
    if value.lower() in _RESERVED:
        raise ValueError(f"{value!r} can't carry a token")
    return value


def _not_blank(value: str) -> str:
    if not value.strip() or any(ord(c) < 0x20 for c in value):
        raise ValueError("must not be empty nor hold control characters")
    return value


Text = Annotated[str, AfterValidator(_not_blank)]

#: the keys of each scheme (the bearer token's are ProviderBase's)
_BASIC = ("username", "password_env", "password_file")
_OAUTH = (
    "token_url",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "refresh_token_env",
    "refresh_token_file",
    "scope",
    "audience",
    "token_auth",
)


def _schemes(*keys: list[str]) -> list[str]:
    names = ("a bearer token", "HTTP Basic", "OAuth2")
    return [name for name, found in zip(names, keys, strict=True) if found]


class AuthConfig(ProviderBase):
    """The auth keys of a SCIM server's ``[[providers]]`` table: exactly one scheme."""

    #: where the type's OAuth2 token endpoint is when ``token_url`` is not set
    #: (Webex's), or None: ``token_url`` is required
    default_token_path: ClassVar[str | None] = None
    #: how the client authenticates to the token endpoint unless ``token_auth`` says
    default_token_auth: ClassVar[Literal["basic", "post"]] = "basic"
    #: the type's token endpoint has the refresh grant only (Webex integrations)
    refresh_grant_only: ClassVar[bool] = False

    auth_header: Annotated[str, AfterValidator(_header_name)] | None = None
    username: Text | None = None
    password_env: str | None = None
    password_file: str | None = None
    token_url: str | None = None
    client_id: Text | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    refresh_token_env: str | None = None
    refresh_token_file: str | None = None
    scope: Text | None = None
    audience: Text | None = None
    #: RFC 6749 §2.3.1: "basic" (Authorization: Basic, the default) or "post" (in the form)
    token_auth: Literal["basic", "post"] | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> AuthConfig:
        for a, b in (
            ("password_env", "password_file"),
            ("client_secret_env", "client_secret_file"),
            ("refresh_token_env", "refresh_token_file"),
        ):
            at_most_one(self, a, b)
        token = [k for k in ("token_env", "token_file") if getattr(self, k)]
        basic = [k for k in _BASIC if getattr(self, k)]
        oauth = [k for k in _OAUTH if getattr(self, k)]
        used = [keys[0] for keys in (token, basic, oauth) if keys]
        if len(used) > 1:
            named = [f"{k} ({s})" for k, s in zip(used, _schemes(token, basic, oauth), strict=True)]
            raise ValueError(
                f"{' and '.join(named)} are keys of different auth schemes: set one of token_env/"
                "token_file (a bearer token, or with auth_header), username + password_env/"
                "password_file (HTTP Basic), or client_id + client_secret_env/_file (OAuth2)"
            )
        if self.auth_header and not token:
            raise ValueError("auth_header needs token_env or token_file (the header's value)")
        if basic:
            if not self.username:
                raise ValueError(f"{basic[0]} needs username (HTTP Basic)")
            if not (self.password_env or self.password_file):
                raise ValueError("username needs password_env or password_file (HTTP Basic)")
        if oauth:
            self._oauth_keys(oauth)
        if not used:
            raise ValueError(
                "set token_env or token_file (a bearer token), username + password_env/password_file"
                " (HTTP Basic), or client_id + client_secret_env/_file (OAuth2)"
            )
        return self

    def _oauth_keys(self, oauth: list[str]) -> None:
        if not self.client_id:
            raise ValueError(f"{oauth[0]} needs client_id (OAuth2)")
        if not self.token_url and self.default_token_path is None:
            raise ValueError("client_id needs token_url (the OAuth2 token endpoint)")
        if self.token_url and not self.token_url.startswith(("http://", "https://")):
            raise ValueError("token_url: must start with http:// or https://")
        if not (self.client_secret_env or self.client_secret_file):
            raise ValueError("client_id needs client_secret_env or client_secret_file")
        refresh = self.refresh_token_env or self.refresh_token_file
        if self.refresh_grant_only and not refresh:
            raise ValueError("client_id needs refresh_token_env or refresh_token_file")

    @property
    def token_endpoint(self) -> str:
        return self.token_url or f"{self.base_url}{self.default_token_path or ''}"


def make_auth(config: AuthConfig) -> Auth:
    """The ``Auth`` of the one scheme configured (reads its secrets)."""
    if config.client_id:
        client = OAuthClient(
            token_url=config.token_endpoint,
            client_id=config.client_id,
            client_secret=read_secret(config, "client_secret_env", "client_secret_file") or "",
            auth=config.token_auth or config.default_token_auth,
            scope=config.scope,
            audience=config.audience,
        )
        refresh = read_secret(config, "refresh_token_env", "refresh_token_file")
        if refresh:
            return RefreshGrant(config.name, client, refresh)
        return ClientCredentials(config.name, client)
    if config.username:
        return BasicAuth(config.username, read_secret(config, "password_env", "password_file") or "")
    token = read_secret(config, "token_env", "token_file") or ""
    if config.auth_header:
        return HeaderToken(config.auth_header, token)
    return BearerToken(token)
