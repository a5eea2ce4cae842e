"""A configured provider ready to sync: its connection (adapter, HTTP client,
gate), and what the pure plan reads from the config for it."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import aiohttp

from syncd import __version__
from syncd.config import ProviderBase, SyncConfig
from syncd.http import Gate, ProviderClient
from syncd.providers import Connection, connect
from syncd.sync.plan import PlanSettings


@dataclass
class ReadMode:
    """How this provider's users are read: in batches of ``batch_size`` ids
    per request, or one by one (0). Decided at the first pass (``sync.reads``)
    and switched to one by one, for good, when a batch answer can't be trusted."""

    batch_size: int = 0
    decided: bool = False
    #: why users are read one by one although the type could batch
    reason: str | None = None

    @property
    def name(self) -> str:
        return "batch" if self.batch_size else "by_id"


#: the version of what a provider's document maps to: bumped whenever a
#: ``normalize`` changes (2: SCIM names in any case, the enterprise columns),
#: so body fingerprints and ETags kept before are not trusted and every user
#: is mapped again once, even where the release's version is the same
MAPPING = 2


@dataclass
class ProviderRuntime:
    """A configured provider ready to fetch: its connection, and the state
    the sync keeps for it."""

    connection: Connection
    #: record paths whose difference alone is no change worth an event (the
    #: mirror row is rewritten quietly): ``ignore_fields`` and, unless
    #: ``representation_events``, the type's representation fields
    quiet: tuple[str, ...]
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
    reads: ReadMode = field(default_factory=ReadMode)

    @property
    def name(self) -> str:
        return self.config.name

    @cached_property
    def etag_scope(self) -> str:
        """What a stored ETag was kept under (the salt's digest): an ETag kept
        under another is not sent, since a 304 would keep a record that an
        upgrade or a changed ignore/redact setting must map again."""
        return hashlib.sha256(self.salt).hexdigest()[:16]

    @property
    def config(self) -> ProviderBase:
        return self.connection.config

    @property
    def client(self) -> ProviderClient:
        return self.connection.client

    @property
    def gate(self) -> Gate:
        return self.connection.gate

    @property
    def session(self) -> aiohttp.ClientSession:
        return self.connection.session

    async def close(self) -> None:
        await self.connection.close()


def open_runtime(config: ProviderBase) -> ProviderRuntime:
    connection = connect(config)
    kind = connection.kind
    ignore = config.ignore_fields if config.ignore_fields is not None else kind.default_ignore_fields
    quiet = (*ignore, *(() if config.representation_events else kind.representation_fields))
    salt = repr((__version__, MAPPING, kind.name, sorted(config.redact_fields), sorted(quiet))).encode()
    return ProviderRuntime(connection, quiet, salt=salt)


def plan_settings(runtime: ProviderRuntime, sync: SyncConfig) -> PlanSettings:
    """What the pure plan reads from the config, for this provider."""
    cfg = runtime.config
    return PlanSettings(
        provider=runtime.name,
        provider_type=cfg.type,  # type: ignore[attr-defined]
        quiet=runtime.quiet,
        interval=cfg.interval,
        deleted_recheck=cfg.deleted_recheck,
        error_retry=sync.error_retry,
        circuit_cooldown=runtime.gate.circuit.cooldown,
        delete_confirmations=sync.delete_confirmations,
        delete_confirm_after=sync.delete_confirm_after,
        quarantine_after=sync.quarantine_after,
        max_delete_fraction=sync.max_delete_fraction,
        max_delete_count=sync.max_delete_count,
        etag_scope=runtime.etag_scope,
    )
