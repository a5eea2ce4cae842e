"""Credentials for a provider's requests: a static header (a bearer token,
HTTP Basic, a token in a custom header), or a token
flow (a token endpoint, its answers read by ``token_endpoint``) driven by
the state machine in ``token_state``."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import aiohttp
import structlog

from syncd import jsonutil
from syncd.errors import AuthError, MalformedResponse, ProviderError
from syncd.http import defaults
from syncd.http.token_endpoint import post_checked
from syncd.http.token_state import Obtain, TokenState, Use, Wait
from syncd.logs import register_secret

log = structlog.get_logger("syncd.http")


class Auth(Protocol):
    """Supplies the ``Authorization`` header; token flows can be renewed."""

    renewable: bool

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]: ...

    def invalidate(self, used: str | None = None, error: AuthError | None = None) -> bool:
        """The provider refused ``used`` (an Authorization value) with ``error``:
        forget that token (only that one, so concurrent 401s renew once).
        False when a new token cannot help (the credentials are refused)."""
        ...

    def accepted(self, used: str | None) -> None:
        """The provider answered a request made with ``used`` (it is valid)."""

    def refusal(self) -> AuthError | None:
        """The credentials' refusal in force (every request fails with it), if any."""
        ...


class StaticHeader:
    """Credentials that never change: one header with a fixed value (a bearer
    token, HTTP Basic, or a token in a header of the provider's own such as
    ``X-API-Key``). A refusal can't be renewed away: it stops the pass."""

    renewable = False

    def __init__(self, name: str, value: str, *, label: str = "StaticHeader") -> None:
        register_secret(value)
        self._header = {name: value}
        self._label = label

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        return self._header

    def invalidate(self, used: str | None = None, error: AuthError | None = None) -> bool:
        return False

    def accepted(self, used: str | None) -> None:
        pass

    def refusal(self) -> AuthError | None:
        return None

    def __repr__(self) -> str:  # never show the credentials
        return f"{self._label}(***)"


class BearerToken(StaticHeader):
    """``Authorization: Bearer <token>`` (RFC 6750 §2.1)."""

    def __init__(self, token: str) -> None:
        super().__init__("Authorization", f"Bearer {token}", label="BearerToken")


class BasicAuth(StaticHeader):
    """``Authorization: Basic …`` (RFC 7617): django-scim2's and SCIMMY's scheme."""

    def __init__(self, user: str, password: str) -> None:
        super().__init__("Authorization", basic_auth(user, password), label="BasicAuth")


class HeaderToken(StaticHeader):
    """A static token as the whole value of a header of the provider's own
    (``X-API-Key: <token>``, no ``Bearer`` prefix)."""

    def __init__(self, header: str, token: str) -> None:
        super().__init__(header, token, label="HeaderToken")


class TokenFlow:
    """A cached bearer token from a token endpoint, renewed before ``expires_in``
    runs out and on demand after a 401. Subclasses implement ``obtain``; the
    decisions are ``self.state``'s (``TokenState``), the I/O is here."""

    renewable = True

    def __init__(
        self,
        provider: str,
        *,
        timeout: float = defaults.TOKEN_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.state = TokenState(provider)
        #: a token request (connect, send, read) must be done within this many seconds
        self.timeout = timeout
        self._clock, self._sleep = clock, sleep
        self._lock = asyncio.Lock()

    async def obtain(self, session: aiohttp.ClientSession) -> tuple[str, float | None]:
        """Return ``(access_token, expires_in_seconds)``."""
        raise NotImplementedError

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        authorization = self.state.valid(self._clock())
        if authorization is None:
            seen = self.state.attempts
            async with self._lock:
                authorization = await self._settle(session, seen)
        return {"Authorization": authorization}

    async def _settle(self, session: aiohttp.ClientSession, seen: int) -> str:
        """Follow the state machine until it hands out a token (holding the lock)."""
        while True:
            step = self.state.next_step(self._clock(), seen)
            if isinstance(step, Use):
                return step.authorization
            if isinstance(step, Wait):
                await self._sleep(step.seconds)
                continue
            assert isinstance(step, Obtain)
            await self._obtain(session)

    async def _obtain(self, session: aiohttp.ClientSession) -> None:
        try:
            token, expires_in = await self.obtain(session)
        except AuthError as exc:
            self.state.refused(exc, self._clock())
            raise
        except ProviderError as exc:
            self.state.failed(exc, self._clock())
            raise
        except BaseException:
            self.state.attempts += 1
            raise
        register_secret(token)
        self.state.obtained(token, expires_in, self._clock())
        log.info("auth.token_obtained", provider=self.provider, expires_in=expires_in)

    def invalidate(self, used: str | None = None, error: AuthError | None = None) -> bool:
        before = self.state.refused_renewals
        renew = self.state.invalidate(used, error, self._clock())
        refused = self.state.refused_renewals
        if not renew:
            log.warning("auth.renewed_token_refused", provider=self.provider, refused=refused)
        elif refused != before:
            log.info("auth.renewed_token_refused_once", provider=self.provider, refused=refused)
        return renew

    def accepted(self, used: str | None) -> None:
        self.state.accepted(used)

    def refusal(self) -> AuthError | None:
        return self.state.refusal(self._clock())

    async def post_token(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        basic: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST to a token endpoint; a refusal is an ``AuthError`` naming the provider.
        ``basic`` is ``(user, password)`` for HTTP Basic (RFC 7617)."""
        headers = dict(headers or {})
        if basic is not None:
            headers["Authorization"] = basic_auth(*basic)
        status, body = await self.post_checked(session, url, data=data, json=json, headers=headers)
        doc = jsonutil.parse_body(body, provider=self.provider, status=status)
        if not isinstance(doc, dict) or not doc.get("access_token"):
            raise MalformedResponse("token endpoint answered without access_token", provider=self.provider)
        return doc

    async def post_checked(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        what: str = "token endpoint",
        data: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """POST one step of the auth flow; ``(status, body)`` of a 2xx answer
        (see ``token_endpoint.post_checked``)."""
        return await post_checked(
            session,
            url,
            provider=self.provider,
            deadline=self.timeout,
            what=what,
            data=data,
            json=json,
            headers=headers,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


def basic_auth(user: str, password: str) -> str:
    """An RFC 7617 ``Authorization: Basic`` value (UTF-8 credentials)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
