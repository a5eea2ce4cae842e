"""The auth schemes of ``scim`` and ``webex`` (issue #17): one scheme, given
by reference, each conflict a clear error; what each scheme sends."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from syncd import config
from syncd.errors import AuthError, ConfigError, StoreUnavailable, TransientError
from syncd.http import BasicAuth, BearerToken, HeaderToken
from syncd.http.oauth2 import ClientCredentials, MemoryRefreshTokens, OAuthClient, RefreshGrant, fingerprint
from syncd.providers.auth import make_auth

SCIM = {"name": "s", "type": "scim", "base_url": "https://scim.example"}
WEBEX = {"name": "w", "type": "webex", "base_url": "https://webexapis.example", "org_id": "o"}
OAUTH = {"token_url": "https://idp.example/token", "client_id": "c", "client_secret_env": "S"}


def provider(**keys: Any) -> Any:
    base = WEBEX if keys.pop("webex", False) else SCIM
    return config.from_dict({"providers": [{**base, **keys}]}).providers[0]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"username": "u"}, "username needs password_env or password_file"),
        ({"password_env": "P"}, "password_env needs username"),
        (
            {"username": "u", "password_env": "P", "password_file": "/p"},
            "set password_env or password_file, not both",
        ),
        (
            {"token_env": "T", "password_env": "P", "username": "u"},
            "token_env (a bearer token) and username (HTTP Basic)",
        ),
        ({"token_env": "T", **OAUTH}, "token_env (a bearer token) and token_url (OAuth2)"),
        ({"username": "u", "password_env": "P", **OAUTH}, "username (HTTP Basic) and token_url (OAuth2)"),
        ({"client_id": "c", "client_secret_env": "S"}, "client_id needs token_url"),
        ({"token_url": "https://idp.example/token"}, "token_url needs client_id"),
        ({"token_url": "https://idp.example/token", "client_id": "c"}, "client_id needs client_secret_env"),
        ({**OAUTH, "token_url": "idp.example/token"}, "token_url: must start with http"),
        ({"auth_header": "X-API-Key"}, "auth_header needs token_env or token_file"),
        ({"auth_header": "X API Key", "token_env": "T"}, "is not an HTTP header name"),
        ({"auth_header": "Host", "token_env": "T"}, "can't carry a token"),
        ({"token_env": "T", "scope": "read"}, "token_env (a bearer token) and scope (OAuth2)"),
        ({**OAUTH, "token_auth": "jwt"}, "token_auth"),
        ({"token_env": "T", "password": "inline"}, "password: unknown key"),
        ({}, "set token_env or token_file (a bearer token), username + password_env"),
        ({"webex": True, "client_id": "c", "client_secret_env": "S"}, "client_id needs refresh_token_env"),
    ],
)
def test_conflicting_or_incomplete_auth_keys_are_named(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        provider(**keys)
    assert message in str(caught.value), str(caught.value)


def test_each_scheme_builds_its_auth(monkeypatch) -> None:
    monkeypatch.setenv("T", "tok")
    monkeypatch.setenv("P", "pw")
    monkeypatch.setenv("S", "sec")
    monkeypatch.setenv("R", "ref")
    assert isinstance(make_auth(provider(token_env="T")), BearerToken)
    assert isinstance(make_auth(provider(token_env="T", auth_header="X-API-Key")), HeaderToken)
    assert isinstance(make_auth(provider(username="u", password_env="P")), BasicAuth)
    cc = make_auth(provider(**OAUTH, scope="a b", audience="api"))
    assert isinstance(cc, ClientCredentials)
    assert (cc.client.auth, cc.client.scope, cc.client.audience) == ("basic", "a b", "api")
    grant = make_auth(provider(**OAUTH, refresh_token_env="R"))
    assert isinstance(grant, RefreshGrant) and grant.origin == fingerprint("ref")
    webex = make_auth(provider(webex=True, client_id="c", client_secret_env="S", refresh_token_env="R"))
    assert isinstance(webex, RefreshGrant)
    # Webex's own endpoint, its credentials in the form; token_url overrides it
    assert (webex.client.token_url, webex.client.auth) == (
        "https://webexapis.example/v1/access_token",
        "post",
    )
    assert repr(webex) == "RefreshGrant(***)" and "pw" not in repr(
        make_auth(provider(username="u", password_env="P"))
    )


async def test_what_each_static_scheme_sends() -> None:
    basic = await BasicAuth("ann@corp", "p:ä").headers(None)  # type: ignore[arg-type]
    assert base64.b64decode(basic["Authorization"].removeprefix("Basic ")).decode() == "ann@corp:p:ä"
    assert await HeaderToken("X-API-Key", "k").headers(None) == {"X-API-Key": "k"}  # type: ignore[arg-type]


def test_client_authentication_follows_rfc6749_2_3_1() -> None:
    client = OAuthClient(token_url="u", client_id="my client", client_secret="s:e/c", scope="read")
    form, basic = client.request({"grant_type": "client_credentials"})
    # Basic of the form-urlencoded id and secret; nothing of them in the form
    assert form == {"grant_type": "client_credentials", "scope": "read"}
    assert basic == ("my%20client", "s%3Ae%2Fc")
    post = OAuthClient(token_url="u", client_id="c", client_secret="s", auth="post")
    assert post.request({"grant_type": "refresh_token", "refresh_token": "r"}) == (
        {"grant_type": "refresh_token", "refresh_token": "r", "client_id": "c", "client_secret": "s"},
        None,
    )


class ScriptedGrant(RefreshGrant):
    """The refresh grant against a scripted endpoint: valid refresh tokens rotate."""

    def __init__(self, valid: set[str]) -> None:
        super().__init__("p", OAuthClient(token_url="u", client_id="c", client_secret="s"), "r0")
        self.valid, self.used, self.n = valid, [], 0

    async def post_token(self, session, url, *, data=None, json=None, headers=None, basic=None):  # type: ignore[override]
        token = data["refresh_token"]
        self.used.append(token)
        if token not in self.valid:
            raise AuthError("credentials refused by the token endpoint", provider="p", status=400)
        self.n += 1
        self.valid = {f"r{self.n}"}
        return {"access_token": f"a{self.n}", "expires_in": 60, "refresh_token": f"r{self.n}"}


async def test_a_refused_refresh_rereads_the_store_once() -> None:
    flow = ScriptedGrant({"r0"})
    store = MemoryRefreshTokens()
    flow.attach(store)
    assert await flow.obtain(None) == ("a1", 60.0)  # type: ignore[arg-type]
    assert store.token == "r1"  # saved before the access token is handed out
    store.token = "r7"  # a peer rotated it since
    flow.valid = {"r7"}
    await flow.obtain(None)  # type: ignore[arg-type]
    assert flow.used == ["r0", "r1", "r7"] and store.token == "r2"
    flow.valid = set()  # revoked for good: one refusal, one re-read, no retry
    with pytest.raises(AuthError):
        await flow.obtain(None)  # type: ignore[arg-type]
    assert flow.used[-1] == "r2" and len(flow.used) == 4


class UnwritableStore(MemoryRefreshTokens):
    """Down for one write, then back."""

    down = True

    async def save(self, token: str) -> None:
        if self.down:
            self.down = False
            raise StoreUnavailable("PostgreSQL unavailable: ConnectionRefusedError")
        await super().save(token)


async def test_a_rotated_token_the_store_cannot_take_is_kept_for_the_next_refresh() -> None:
    flow = ScriptedGrant({"r0"})
    store = UnwritableStore()
    flow.attach(store)
    with pytest.raises(TransientError, match="refresh token store unavailable"):
        await flow.obtain(None)  # type: ignore[arg-type]
    # r0 is revoked by now: the next refresh uses r1, not the configured r0
    await flow.obtain(None)  # type: ignore[arg-type]
    assert flow.used == ["r0", "r1"] and store.token == "r2"
