"""OAuth 2.0 token flows (RFC 6749) for any provider with a token endpoint:
the client credentials grant (§4.4) and the refresh token grant (§6), whose
rotated refresh tokens are kept by a ``RefreshTokenStore``.

How the client authenticates to the token endpoint (§2.3.1): HTTP Basic with
the form-urlencoded client id and secret by default ("basic", which every
authorization server MUST support), or both in the request body ("post",
which the RFC allows and Webex requires).

Refresh token rotation (§6, §10.4): a server may answer a refresh with a new
refresh token and revoke the old one. The new one is written to the store
*before* the access token is used (a crash after that loses nothing), under
the store's lock, so replicas sharing a store rotate one at a time. A
replica whose refresh is refused re-reads the store once: another replica
may have rotated the token since this one last read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote

import aiohttp
import structlog

from syncd.errors import AuthError, StoreUnavailable, TransientError
from syncd.http.auth import TokenFlow
from syncd.logs import register_secret

log = structlog.get_logger("syncd.http")

ClientAuth = Literal["basic", "post"]


@dataclass(frozen=True, kw_only=True, slots=True)
class OAuthClient:
    """A client of a token endpoint (RFC 6749 §2.3.1)."""

    token_url: str
    client_id: str
    client_secret: str
    #: "basic": ``Authorization: Basic`` (the default); "post": in the form body
    auth: ClientAuth = "basic"
    scope: str | None = None
    audience: str | None = None

    def request(self, grant: dict[str, str]) -> tuple[dict[str, str], tuple[str, str] | None]:
        """The form and the Basic credentials (None: none) of a grant request."""
        form = dict(grant)
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            # not RFC 6749: Auth0's and others' way to name the API asked for
            form["audience"] = self.audience
        if self.auth == "post":
            return form | {"client_id": self.client_id, "client_secret": self.client_secret}, None
        # §2.3.1: the id and secret are form-urlencoded before Basic's encoding
        return form, (quote(self.client_id, safe=""), quote(self.client_secret, safe=""))


class ClientCredentials(TokenFlow):
    """The client credentials grant (RFC 6749 §4.4)."""

    def __init__(self, provider: str, client: OAuthClient) -> None:
        super().__init__(provider)
        self.client = client

    async def obtain(self, session: aiohttp.ClientSession) -> tuple[str, float | None]:
        form, basic = self.client.request({"grant_type": "client_credentials"})
        doc = await self.post_token(session, self.client.token_url, data=form, basic=basic)
        return doc["access_token"], _expires_in(doc)


# -- where the newest refresh token is kept -------------------------------------------------------
class RotationSlot(Protocol):
    """The stored refresh token, while the store's lock is held."""

    async def load(self) -> str | None: ...

    async def save(self, token: str) -> None: ...


class RefreshTokenStore(Protocol):
    """The newest refresh token of one provider (and one configured initial
    token): None until one was rotated."""

    async def load(self) -> str | None: ...

    def rotating(self) -> AbstractAsyncContextManager[RotationSlot]:
        """Hold the lock of one rotation (other replicas wait for it)."""
        ...


class MemoryRefreshTokens:
    """The store of a process with no database (``syncd check`` without one,
    unit tests): a rotated token lives as long as the process."""

    def __init__(self) -> None:
        self.token: str | None = None

    async def load(self) -> str | None:
        return self.token

    async def save(self, token: str) -> None:
        self.token = token

    @asynccontextmanager
    async def rotating(self) -> AsyncIterator[RotationSlot]:
        yield self


def fingerprint(refresh_token: str) -> str:
    """Names the configured initial refresh token in the store, without
    holding it: an admin who configures a new one is obeyed, not the stale
    stored descendant of the old one."""
    return hashlib.sha256(refresh_token.encode()).hexdigest()[:32]


class RefreshGrant(TokenFlow):
    """The refresh token grant (RFC 6749 §6), rotation kept by ``store``."""

    def __init__(self, provider: str, client: OAuthClient, refresh_token: str) -> None:
        super().__init__(provider)
        self.client = client
        self.configured = refresh_token
        self.origin = fingerprint(refresh_token)
        self.store: RefreshTokenStore = MemoryRefreshTokens()
        #: the refresh token to use next: the newest this process knows
        self.current: str | None = None

    def attach(self, store: RefreshTokenStore) -> None:
        """Keep rotated tokens in ``store`` (the database: shared by replicas,
        read by the next process) instead of this process's memory."""
        self.store = store
        self.current = None

    async def obtain(self, session: aiohttp.ClientSession) -> tuple[str, float | None]:
        try:
            if self.current is None:
                self.current = await self.store.load() or self.configured
            async with self.store.rotating() as slot:
                try:
                    return await self._refresh(session, slot, self.current)
                except AuthError:
                    stored = await slot.load()
                    if stored is None or stored == self.current:
                        raise
                    # another replica rotated it since we read it: once more with its token
                    log.info("auth.refresh_token_rotated_elsewhere", provider=self.provider)
                    self.current = stored
                    return await self._refresh(session, slot, stored)
        except StoreUnavailable as exc:
            # never refresh without the store: a rotated token we could not
            # write would be lost, and with it the provider
            raise TransientError(f"refresh token store unavailable: {exc}", provider=self.provider) from exc

    async def _refresh(
        self, session: aiohttp.ClientSession, slot: RotationSlot, token: str
    ) -> tuple[str, float | None]:
        form, basic = self.client.request({"grant_type": "refresh_token", "refresh_token": token})
        doc = await self.post_token(session, self.client.token_url, data=form, basic=basic)
        rotated = doc.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != token:
            register_secret(rotated)
            # kept in memory first: if the store can't take it, this process can
            # still refresh with it (and store the next one), as the old one may
            # be revoked already
            self.current = rotated
            try:
                # written before the access token is used
                await slot.save(rotated)
            except StoreUnavailable:
                log.error(
                    "auth.refresh_token_not_stored",
                    provider=self.provider,
                    detail="the rotated refresh token lives in this process only until the next refresh",
                )
                raise
            log.info("auth.refresh_token_rotated", provider=self.provider)
        return doc["access_token"], _expires_in(doc)


def _expires_in(doc: dict[str, Any]) -> float | None:
    """§5.1 ``expires_in`` (seconds; some servers send it as a string)."""
    value = doc.get("expires_in")
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
