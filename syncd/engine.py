"""The sync engine: every configured provider's runtime, the peers' pauses
it hears, and the entry points that the daemon, ``syncd resync``, ``syncd
deletions`` and ``syncd demo`` call. The work itself is in ``syncd.sync``:
a pass (``runner``), its dry run, the fetch, the pure plan, the writer and
the deletion guard."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import structlog

from syncd import metrics
from syncd.config import Config
from syncd.configbase import ProviderBase
from syncd.discovery.run import Discoverer, DiscoveryReport, DiscoverySettings
from syncd.http import RetryPolicy
from syncd.model.events import EVENT_NAMESPACE, event_id
from syncd.store import Store
from syncd.store.listener import Notifications, Subscription
from syncd.sync.credentials import attach_store
from syncd.sync.deletions import DeletionGuard
from syncd.sync.dry_run import dry_run
from syncd.sync.feed import FeedReport, walk_feed
from syncd.sync.page_refresh import PageRefresh, refreshes_from_pages
from syncd.sync.pauses import PeerPauses, share_pause
from syncd.sync.report import PassReport
from syncd.sync.runner import PassServices, SyncPass
from syncd.sync.runtime import ProviderRuntime, open_runtime
from syncd.sync.writer import BatchWriter

log = structlog.get_logger("syncd.engine")

#: connecting the LISTEN connection again after it went: 0.5 s, doubling up to
#: 15 s (full jitter, so that replicas don't all come back at once)
LISTEN_RETRY = RetryPolicy(backoff_base=0.5, backoff_cap=15.0)


#: when the next listing is due after `syncd discover` of a provider without ``discover``
DEFAULT_DISCOVER_INTERVAL = 3600.0


async def reschedule(store: Store, provider: ProviderBase) -> int:
    """Bring in targets due later than ``interval`` (``deleted_recheck`` for
    deleted users) allows: a lowered interval holds from the start."""
    moved = await store.cap_schedules(
        provider.name, interval=provider.interval, deleted_recheck=provider.deleted_recheck
    )
    if moved:
        log.info(
            "targets.rescheduled",
            provider=provider.name,
            targets=moved,
            interval=provider.interval,
            deleted_recheck=provider.deleted_recheck,
        )
    return moved


def default_replica() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{random.getrandbits(16):04x}"


class Engine:
    """``listen``: hear other replicas' pauses on a LISTEN connection of the
    engine's own (``syncd resync``, ``syncd deletions``, the demo). The daemon
    passes False: it owns the process's one LISTEN connection and subscribes
    the engine's ``subscriptions`` on it."""

    def __init__(
        self, store: Store, config: Config, *, replica: str | None = None, listen: bool = True
    ) -> None:
        self.store = store
        self.config = config
        self.replica = replica or config.daemon.replica or default_replica()
        self.runtimes: dict[str, ProviderRuntime] = {}
        self.pauses = PeerPauses(store, self.runtimes, self.replica)
        sync = config.sync
        self.services = PassServices(
            store=store,
            replica=self.replica,
            sync=sync,
            pauses=self.pauses,
            deletions=DeletionGuard(store, self.replica, sync),
            writer=BatchWriter(store, self.replica, sync),
        )
        # a listing's page refresh leases under a name of its own: a pass of
        # this replica releasing its leases at its end must not release the
        # users a page is writing (nor the page a pass's)
        listing = f"{self.replica}/listing"
        self.listing_services = replace(
            self.services, replica=listing, writer=BatchWriter(store, listing, sync)
        )
        self._notifications: Notifications | None = None
        if listen:
            self._notifications = Notifications(store, backoff=LISTEN_RETRY.backoff)
            for subscription in self.subscriptions:
                self._notifications.subscribe(subscription)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        for provider in self.config.providers:
            runtime = open_runtime(provider)
            runtime.gate.on_pause = share_pause(self.store, provider.name)
            metrics.PROVIDER_INTERVAL.labels(provider.name).set(provider.interval)
            attach_store(runtime, self.store)
            self.runtimes[provider.name] = runtime
        if self._notifications is not None:
            await self._notifications.start()

    async def close(self) -> None:
        if self._notifications is not None:
            await self._notifications.close()
        await self.pauses.close()
        for runtime in self.runtimes.values():
            await runtime.close()
        self.runtimes.clear()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the peers' pauses --------------------------------------------------------------
    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The channels the engine hears, for whoever owns the LISTEN connection."""
        return (self.pauses.subscription(),)

    @property
    def listening(self) -> bool:
        """Peers' pauses arrive as they are recorded (else read before every batch)."""
        return self.pauses.listening

    @property
    def hints_read(self) -> int:
        return self.pauses.hints_read

    def paused(self) -> dict[str, datetime]:
        """The providers paused now (a ``Retry-After``, ours or a peer's), and until when."""
        return {
            name: runtime.gate.paused_until
            for name, runtime in self.runtimes.items()
            if runtime.gate.paused() and runtime.gate.paused_until is not None
        }

    def runtime(self, name: str) -> ProviderRuntime:
        if name not in self.runtimes:
            self.config.provider(name)  # raises a ConfigError naming the known ones
            raise KeyError(name)
        return self.runtimes[name]

    async def register_config_targets(self) -> None:
        """A provider's ``user_ids`` from the config are always targets; and
        targets scheduled later than the configured cadence allows (the
        interval was lowered since) are brought in."""
        for provider in self.config.providers:
            if provider.user_ids:
                await self.store.add_targets(provider.name, provider.user_ids)
            await reschedule(self.store, provider)

    # -- entry points ------------------------------------------------------------------
    async def sync(
        self,
        provider: str,
        *,
        trigger: str = "schedule",
        only: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        stop: asyncio.Event | None = None,
        max_batches: int | None = None,
    ) -> PassReport:
        """One pass: every due target of ``provider`` (or only ``only``) until none is due."""
        runtime = self.runtime(provider)
        runtime.pause_checked = False
        one = SyncPass(self.services, runtime, PassReport(provider, trigger), only=only, progress=progress)
        return await one.run(stop=stop, max_batches=max_batches)

    async def dry_run(
        self,
        provider: str,
        *,
        only: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PassReport:
        """Fetch and plan, write nothing: what a resync would change."""
        return await dry_run(self.services, self.runtime(provider), only=only, progress=progress)

    async def discover(
        self, provider: str, *, dry_run: bool = False, allow_empty: bool = False
    ) -> DiscoveryReport:
        """List the provider's users now and enrol the new ones (``syncd.discovery``)."""
        return await self._discoverer(provider, allow_empty=allow_empty).run(dry_run=dry_run)

    async def walk_feed(self, provider: str) -> FeedReport:
        """Walk the provider's change feed: its changed targets are due now (``syncd.sync.feed``)."""
        return await walk_feed(self.store, self.runtime(provider))

    async def discover_if_due(self, provider: str) -> DiscoveryReport | None:
        """The daemon's schedule: list if due and no other replica lists it."""
        return await self._discoverer(provider, allow_empty=False).run_if_due()

    def _discoverer(self, provider: str, *, allow_empty: bool) -> Discoverer:
        runtime = self.runtime(provider)
        config = runtime.config
        settings = DiscoverySettings(
            provider=provider,
            interval=config.discover or DEFAULT_DISCOVER_INTERVAL,
            scoped=config.discover_filter is not None,
            allow_empty=allow_empty,
            # renewed every third of it while listing: a killed replica's lease soon expires
            lease_seconds=max(self.config.sync.lease, 60.0),
        )
        on_page = PageRefresh(self.listing_services, runtime) if refreshes_from_pages(runtime) else None
        return Discoverer(self.store, settings, runtime.connection.list_pages, self.replica, on_page=on_page)

    async def decide_held_deletions(
        self, provider: str, user_ids: Sequence[str], *, approve: bool
    ) -> tuple[int, int, int]:
        """`syncd deletions approve|reject`: (deleted or rejected, came back, busy)."""
        return await self.services.deletions.decide_held(self.runtime(provider), user_ids, approve=approve)


__all__ = [
    "EVENT_NAMESPACE",
    "LISTEN_RETRY",
    "Engine",
    "PassReport",
    "ProviderRuntime",
    "event_id",
    "open_runtime",
]
