"""A configured provider, connected: its adapter and the HTTP client that
sends the adapter's requests, built from its config in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from syncd.configbase import ProviderBase
from syncd.http import Gate, ProviderClient, RetryPolicy, make_session
from syncd.model.listing import Page
from syncd.providers.base import Adapter, ProviderType, SearchBy
from syncd.providers.check import check
from syncd.providers.fetch import FetchResult, fetch_user
from syncd.providers.listing import list_ids, list_pages
from syncd.providers.registry import REGISTRY
from syncd.providers.search import find_user


@dataclass
class Connection:
    config: ProviderBase
    kind: ProviderType
    adapter: Adapter
    client: ProviderClient
    gate: Gate
    session: aiohttp.ClientSession

    async def fetch_user(
        self, user_id: str, *, known_body_hash: str | None, salt: bytes, etag: str | None = None
    ) -> FetchResult:
        return await fetch_user(
            self.adapter, self.client, user_id, known_body_hash=known_body_hash, salt=salt, etag=etag
        )

    async def check(self) -> str:
        """An authenticated read of the right shape (``providers.check``)."""
        return await check(self.adapter, self.client)

    def list_ids(self) -> AsyncIterator[str]:
        return list_ids(self.adapter, self.client)

    async def find_user(self, by: SearchBy, value: str) -> str:
        """The id of the one user with this user name or email (``providers.search``)."""
        return await find_user(self.adapter, self.client, by, value)

    def list_pages(self) -> AsyncIterator[Page]:
        """The provider's listing, page by page (``providers.listing``)."""
        return list_pages(self.adapter, self.client)

    async def close(self) -> None:
        await self.client.aclose()
        await self.session.close()


def connect(config: ProviderBase) -> Connection:
    """The adapter, auth, gate, session and client of one configured provider."""
    kind = REGISTRY[config.type]  # type: ignore[attr-defined]
    # first: a missing secret or a bad URL must not leave a session open
    auth = kind.make_auth(config)
    adapter = kind.adapter(config)
    session = make_session(config.concurrency, config.connect_timeout, config.read_timeout)
    gate = Gate(
        config.name,
        concurrency=config.concurrency,
        max_rps=config.max_rps,
        adaptive=config.adaptive,
        circuit_failures=config.circuit_failures,
        circuit_cooldown=config.circuit_cooldown,
    )
    client = ProviderClient(
        config.name,
        session,
        gate,
        auth,
        policy=RetryPolicy(
            max_attempts=config.max_attempts,
            retry_after_cap=config.retry_after_cap,
            backoff_base=config.backoff_base,
            backoff_cap=config.backoff_cap,
        ),
        error_detail=kind.error_detail,
        tracking_header=kind.tracking_header,
        default_headers=adapter.default_headers,
        redact_fields=config.redact_fields,
        max_body=config.max_body_bytes,
        request_timeout=config.request_timeout,
        not_found=kind.not_found,
    )
    return Connection(config, kind, adapter, client, gate, session)
