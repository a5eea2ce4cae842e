"""A configured provider ready to sync: its adapter, HTTP client and gate,
and what the pure plan reads from the config for it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from syncd import __version__
from syncd.config import ProviderBase, SyncConfig
from syncd.http import Gate, ProviderClient, RetryPolicy, make_session
from syncd.providers import REGISTRY
from syncd.sync.plan import PlanSettings


@dataclass
class ProviderRuntime:
    """A configured provider ready to fetch: adapter, HTTP client, gate."""

    config: ProviderBase
    adapter: Any
    client: ProviderClient
    gate: Gate
    session: aiohttp.ClientSession
    ignore: tuple[str, ...]
    #: salts the body fingerprint with everything that shapes the record, so
    #: an upgrade or a changed ignore/redact setting re-reads every user once
    salt: bytes = b""
    #: the circuit state last written to provider_state (for `status`)
    circuit_recorded: str = "closed"
    pause_checked: bool = False
    #: re-reading the shared pause after a NOTIFY hint (one at a time), and
    #: whether another hint came in meanwhile (then one more read follows)
    pause_reread: asyncio.Task[None] | None = None
    pause_hinted: bool = False
    #: provider_state.updated_at of the last admin clear this process obeyed:
    #: a clear drops our own pause once, not at every later read
    clear_seen: datetime | None = None

    @property
    def name(self) -> str:
        return self.config.name

    async def close(self) -> None:
        await self.client.aclose()
        await self.session.close()


def open_runtime(config: ProviderBase) -> ProviderRuntime:
    cls = REGISTRY[config.type]  # type: ignore[attr-defined]
    auth = cls.make_auth(config)  # first: a missing secret must not leave a session open
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
        error_detail=cls.error_detail,
        tracking_header=cls.tracking_header,
        redact_fields=config.redact_fields,
        max_body=config.max_body_bytes,
        request_timeout=config.request_timeout,
        not_found=cls.not_found,
    )
    ignore = config.ignore_fields if config.ignore_fields is not None else cls.default_ignore_fields
    salt = repr((__version__, config.type, sorted(config.redact_fields), sorted(ignore))).encode()  # type: ignore[attr-defined]
    return ProviderRuntime(config, cls(config, client), client, gate, session, tuple(ignore), salt=salt)


def plan_settings(runtime: ProviderRuntime, sync: SyncConfig) -> PlanSettings:
    """What the pure plan reads from the config, for this provider."""
    cfg = runtime.config
    return PlanSettings(
        provider=runtime.name,
        provider_type=cfg.type,  # type: ignore[attr-defined]
        ignore=runtime.ignore,
        interval=cfg.interval,
        error_retry=sync.error_retry,
        circuit_cooldown=runtime.gate.circuit.cooldown,
        delete_confirmations=sync.delete_confirmations,
        delete_confirm_after=sync.delete_confirm_after,
        quarantine_after=sync.quarantine_after,
        max_delete_fraction=sync.max_delete_fraction,
        max_delete_count=sync.max_delete_count,
    )
