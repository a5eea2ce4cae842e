"""One discovery of one provider: lease, list every page, check the listing
is complete, reconcile it with the targets, write the result.

The pages come from the provider (``syncd.providers``' list requests through
the shared HTTP client); this module knows nothing of their shape. Nothing
is written unless the listing is complete, and a complete one only adds
targets and makes missing ones due.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog

from syncd import metrics
from syncd.discovery.listing import Listing, ListingIncomplete, Page, Verdict
from syncd.discovery.reconcile import Reconciliation, reconcile
from syncd.errors import StoreUnavailable, SyncdError
from syncd.model.listing import PageRefreshed
from syncd.store import DiscoveryHolder, Store

log = structlog.get_logger("syncd.discovery")


@dataclass(frozen=True, kw_only=True)
class DiscoveryReport:
    provider: str
    verdict: Verdict
    reason: str | None = None
    listed: int = 0
    #: enrolled (or, in a dry run, that would be)
    new: int = 0
    #: targets the listing did not name, made due for a by-id read
    missing: int = 0
    unchanged: int = 0
    #: targets the pages' documents refreshed (no request of their own), and
    #: of them changed; also when the listing was refused
    refreshed: int = 0
    changed: int = 0
    dry_run: bool = False
    #: who holds the lease, when the verdict is LEASED
    holder: DiscoveryHolder | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.COMPLETE


@dataclass(slots=True)
class _Refreshed:
    """What the pages of one listing refreshed so far."""

    refreshed: int = 0
    changed: int = 0

    def add(self, page: PageRefreshed) -> None:
        self.refreshed += page.refreshed
        self.changed += page.changed


@dataclass(frozen=True, kw_only=True)
class DiscoverySettings:
    provider: str
    #: seconds between listings (the next one is due this long after a complete one)
    interval: float
    #: a filtered listing (``discover_filter``): explicit targets outside it are left alone
    scoped: bool = False
    allow_empty: bool = False
    lease_seconds: float = 300.0
    #: after a failed or incomplete listing, try again this soon
    retry_in: float = 300.0


#: given each page a listing accepted (not in a dry run): refreshes the
#: targets it lists from its documents (``syncd.sync.page_refresh``)
OnPage = Callable[[Page], Awaitable[PageRefreshed]]


@dataclass
class Discoverer:
    """Runs one listing for the provider in ``settings``. ``pages`` opens a
    fresh walk over the provider's pages."""

    store: Store
    settings: DiscoverySettings
    pages: Callable[[], AsyncIterator[Page]]
    owner: str
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    on_page: OnPage | None = None

    async def run(self, *, dry_run: bool = False) -> DiscoveryReport:
        """List now (`syncd discover`): the report, LEASED when another
        replica is listing the provider."""
        name = self.settings.provider
        if not dry_run and not await self._lease(only_when_due=False):
            holder = await self.store.discovery_holder(name)
            return self._finish(DiscoveryReport(provider=name, verdict=Verdict.LEASED, holder=holder))
        return await self._list(dry_run=dry_run)

    async def run_if_due(self) -> DiscoveryReport | None:
        """List if the provider's listing is due and no replica lists it (the
        daemon's schedule); None otherwise."""
        if not await self._lease(only_when_due=True):
            return None
        return await self._list(dry_run=False)

    async def _lease(self, *, only_when_due: bool) -> bool:
        return await self.store.lease_discovery(
            self.settings.provider,
            self.owner,
            seconds=self.settings.lease_seconds,
            only_when_due=only_when_due,
        )

    async def _list(self, *, dry_run: bool) -> DiscoveryReport:
        listing, refreshed = Listing(), _Refreshed()
        try:
            ids = await self._walk(listing, refreshed if not dry_run else None)
        except ListingIncomplete as exc:
            report = await self._refused(Verdict.INCOMPLETE, exc.reason, listing, dry_run, refreshed)
        except SyncdError as exc:
            report = await self._refused(Verdict.FAILED, str(exc), listing, dry_run, refreshed)
        except asyncio.CancelledError:
            if not dry_run:
                await self._release_shielded(listing)
            raise
        else:
            report = await self._reconciled(ids, dry_run, refreshed)
        return self._finish(report)

    async def _walk(self, listing: Listing, refreshed: _Refreshed | None) -> list[str]:
        """Every page into ``listing`` (and, unless a dry run, refreshing the
        targets it lists), while a heartbeat keeps the lease (a page may wait
        out a long Retry-After); a lost lease ends the walk."""
        if refreshed is None:
            return await self._read_pages(listing, None)
        heartbeat = asyncio.create_task(self._keep_lease(), name=f"discovery-lease:{self.settings.provider}")
        walk = asyncio.create_task(
            self._read_pages(listing, refreshed), name=f"discovery:{self.settings.provider}"
        )
        try:
            await asyncio.wait({heartbeat, walk}, return_when=asyncio.FIRST_COMPLETED)
            if not walk.done():
                heartbeat.result()  # it only ends by raising: the lease was lost
            return walk.result()
        finally:
            for task in (heartbeat, walk):
                task.cancel()
            await asyncio.gather(heartbeat, walk, return_exceptions=True)

    async def _read_pages(self, listing: Listing, refreshed: _Refreshed | None) -> list[str]:
        async for page in self.pages():
            listing.add(page)  # a page that breaks the listing refreshes no one either
            if refreshed is not None and self.on_page is not None:
                refreshed.add(await self.on_page(page))
        return listing.finish()

    async def _keep_lease(self) -> None:
        """Renew the lease every third of it; raise once another replica has it."""
        while True:
            await self.sleep(self.settings.lease_seconds / 3)
            try:
                renewed = await self.store.renew_discovery_lease(
                    self.settings.provider, self.owner, seconds=self.settings.lease_seconds
                )
            except StoreUnavailable:
                continue  # the write at the end checks the lease again
            if not renewed:
                raise SyncdError("the discovery lease was lost (it expired and another replica took it over)")

    async def _reconciled(self, ids: list[str], dry_run: bool, refreshed: _Refreshed) -> DiscoveryReport:
        name = self.settings.provider
        if not ids and not self.settings.allow_empty:
            live = (await self.store.mirror_counts(name, window=0)).live
            if live:
                reason = f"the listing is empty but the mirror holds {live} users (use --allow-empty)"
                return await self._refused(Verdict.EMPTY, reason, Listing(), dry_run, refreshed)
        plan = reconcile(ids, await self.store.target_sources(name), scoped=self.settings.scoped)
        if not dry_run and not await self._apply(plan, len(ids)):
            # taken over after it expired: the other replica's listing counts
            reason = (
                "the discovery lease was lost before the listing was applied; no one was enrolled or made due"
            )
            return DiscoveryReport(
                provider=name,
                verdict=Verdict.FAILED,
                reason=reason,
                refreshed=refreshed.refreshed,
                changed=refreshed.changed,
            )
        report = DiscoveryReport(
            provider=name,
            verdict=Verdict.COMPLETE,
            listed=len(ids),
            new=len(plan.new),
            missing=len(plan.missing),
            unchanged=plan.unchanged,
            dry_run=dry_run,
            refreshed=refreshed.refreshed,
            changed=refreshed.changed,
        )
        if not dry_run:
            metrics.DISCOVERED.labels(name).set(len(ids))
            metrics.DISCOVERY_LAST_SUCCESS.labels(name).set(time.time())
        return report

    async def _apply(self, plan: Reconciliation, listed: int) -> bool:
        applied = await self.store.apply_discovery(
            self.settings.provider,
            self.owner,
            new=plan.new,
            missing=plan.missing,
            listed=listed,
            unchanged=plan.unchanged,
            next_in=self.settings.interval,
        )
        return applied is not None

    async def _refused(
        self, verdict: Verdict, reason: str, listing: Listing, dry_run: bool, refreshed: _Refreshed
    ) -> DiscoveryReport:
        """A listing that enrols no one and makes no one due: recorded, and
        its lease released (the users its pages refreshed stay refreshed)."""
        name = self.settings.provider
        if not dry_run:
            await self.store.fail_discovery(
                name,
                self.owner,
                verdict=verdict,
                reason=reason,
                listed=len(listing.ids),
                next_in=min(self.settings.retry_in, self.settings.interval),
            )
        return DiscoveryReport(
            provider=name,
            verdict=verdict,
            reason=reason,
            listed=len(listing.ids),
            dry_run=dry_run,
            refreshed=refreshed.refreshed,
            changed=refreshed.changed,
        )

    async def _release_shielded(self, listing: Listing) -> None:
        """Interrupted (SIGTERM): record it and free the lease, within a few
        seconds; if the database is slow too, the lease just expires."""
        release = self.store.fail_discovery(
            self.settings.provider,
            self.owner,
            verdict=Verdict.FAILED,
            reason="interrupted (the process was stopped while listing)",
            listed=len(listing.ids),
            next_in=0,
        )
        try:
            await asyncio.wait_for(asyncio.shield(release), timeout=5)
        except (TimeoutError, asyncio.CancelledError, SyncdError):
            pass
        log.warning("discovery.interrupted", provider=self.settings.provider, listed=len(listing.ids))

    def _finish(self, report: DiscoveryReport) -> DiscoveryReport:
        metrics.DISCOVERIES.labels(report.provider, report.verdict).inc()
        fields = {
            "provider": report.provider,
            "verdict": str(report.verdict),
            "listed": report.listed,
            "new": report.new,
            "missing": report.missing,
            "unchanged": report.unchanged,
            "refreshed": report.refreshed,
            "changed": report.changed,
            "dry_run": report.dry_run,
        }
        if report.ok:
            log.info("discovery.finished", **fields)
        elif report.verdict is Verdict.LEASED:
            holder = report.holder.owner if report.holder else None
            log.info("discovery.leased_elsewhere", **fields, holder=holder)
        else:
            log.warning("discovery.refused", **fields, reason=report.reason)
        return report
