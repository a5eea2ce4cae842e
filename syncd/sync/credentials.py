"""What a provider's credentials keep in the database: the newest refresh
token of a refresh-token grant (``syncd.http.oauth2.RefreshGrant``), bound
to the store once the runtime is open (the auth is built without one)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from syncd.http.oauth2 import RefreshGrant, RotationSlot
from syncd.store import Store
from syncd.sync.runtime import ProviderRuntime


class StoredRefreshTokens:
    """``RefreshTokenStore`` over ``syncd.refresh_tokens``, for one provider
    and the fingerprint of its configured refresh token."""

    def __init__(self, store: Store, provider: str, origin: str) -> None:
        self.store, self.provider, self.origin = store, provider, origin

    async def load(self) -> str | None:
        return await self.store.refresh_token(self.provider, self.origin)

    def rotating(self) -> AbstractAsyncContextManager[RotationSlot]:
        return self.store.refresh_token_rotation(self.provider, self.origin)


def attach_store(runtime: ProviderRuntime, store: Store) -> None:
    """Keep the provider's rotated refresh tokens in the database, if it has any."""
    auth = runtime.client.auth
    if isinstance(auth, RefreshGrant):
        auth.attach(StoredRefreshTokens(store, runtime.name, auth.origin))


def rotates_refresh_tokens(runtime: ProviderRuntime) -> bool:
    """The provider's auth is a refresh grant: it may rotate a token that
    only the database can hand on to the daemons."""
    return isinstance(runtime.client.auth, RefreshGrant)
