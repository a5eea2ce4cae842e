"""One sync pass of one provider: lease → fetch → plan → write, batch after
batch, with lease renewal, the run record and one summary line.

The daemon's scheduler, ``syncd resync`` and ``syncd demo`` all run this;
nothing else syncs users."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from syncd import metrics
from syncd.config import SyncConfig
from syncd.errors import AuthError, StoreUnavailable
from syncd.model.status import RunStatus
from syncd.store import Store
from syncd.sync.deletions import DeletionGuard
from syncd.sync.fetch import fetch_batch
from syncd.sync.pauses import PeerPauses
from syncd.sync.plan import BatchPlan, Outcome, plan_batch, rows_needed
from syncd.sync.report import PassReport
from syncd.sync.runtime import ProviderRuntime, plan_settings
from syncd.sync.writer import BatchWriter
from syncd.timeutil import utcnow

log = structlog.get_logger("syncd.engine")

#: leased batches being fetched or written at once: while one finishes its
#: slowest fetches and its write, the next ones keep the provider's queue full
BATCHES_IN_FLIGHT = 3


async def plan_outcomes(
    store: Store, runtime: ProviderRuntime, sync: SyncConfig, outcomes: Sequence[Outcome]
) -> BatchPlan:
    """Read the mirror rows the plan needs, then plan the batch (pure): the
    pass and its dry run both call this."""
    rows = await store.mirror_rows(runtime.name, rows_needed(outcomes))
    return plan_batch(outcomes, rows, plan_settings(runtime, sync), utcnow())


async def write_outcomes(
    services: PassServices, runtime: ProviderRuntime, batch: Sequence[Any], outcomes: Sequence[Outcome]
) -> BatchPlan:
    """Plan and write the outcomes of a leased batch (a pass's, or a listing
    page's: ``page_refresh``); the plan, its counts corrected for the users
    whose write PostgreSQL refused. Its deletions are the caller's to guard."""
    store = services.store
    plan = await plan_outcomes(store, runtime, services.sync, outcomes)
    counts = plan.counts
    targets = {target["user_id"]: target for target in batch}
    refused = await services.writer.write(runtime, plan.changes, plan.targets, targets)
    for counted in refused.values():
        if counted != "failed":  # a failure already counted stays one
            counts[counted] -= 1
            counts["failed"] += 1
    if plan.came_back:
        # users that answer again after 404s: a held or rejected deletion is moot
        await store.clear_pending_deletions(runtime.name, plan.came_back)
    return plan


@dataclass
class PassServices:
    """What a pass works with, shared by every pass of an engine."""

    store: Store
    replica: str
    sync: SyncConfig
    pauses: PeerPauses
    deletions: DeletionGuard
    writer: BatchWriter


class SyncPass:
    def __init__(
        self,
        services: PassServices,
        runtime: ProviderRuntime,
        report: PassReport,
        *,
        only: Sequence[str] | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.services = services
        self.store = services.store
        self.runtime = runtime
        self.report = report
        self.only = only
        self.progress = progress
        self.confirmed_deletions: list[str] = []
        self.inflight: set[asyncio.Task[AuthError | None]] = set()
        #: requests the provider's client had sent when the pass began
        self.sent_before = 0
        self.log = log.bind(provider=runtime.name, replica=services.replica)

    async def run(self, *, stop: asyncio.Event | None, max_batches: int | None) -> PassReport:
        """Sync every due target (or only ``only``) until none is due."""
        report = self.report
        await self._abandon_dead_runs()
        await self._forget_long_deleted()
        report.run_id = await self.store.start_run(
            self.runtime.name, report.trigger, self.services.replica, self.services.sync.lease
        )
        self.log = self.log.bind(run_id=report.run_id)
        self.sent_before = sum(self.runtime.client.sent.values())
        renewer = asyncio.create_task(self._renew_leases(), name=f"renew:{self.runtime.name}")
        try:
            await self._batches(stop, max_batches)
            await self._settle(asyncio.ALL_COMPLETED)
            if self.confirmed_deletions:
                await self.services.deletions.apply(self.runtime, self.confirmed_deletions, report)
        except BaseException as exc:
            for task in self.inflight:
                task.cancel()
            await asyncio.gather(*self.inflight, return_exceptions=True)
            report.status = RunStatus.FAILED
            report.error = f"{exc.__class__.__name__}: {exc}"
            await self._finish()
            raise
        finally:
            renewer.cancel()
        await self._finish()
        return report

    async def _batches(self, stop: asyncio.Event | None, max_batches: int | None) -> None:
        """Lease and start batches, at most BATCHES_IN_FLIGHT at once."""
        runtime, sync, batches = self.runtime, self.services.sync, 0
        while not (stop and stop.is_set()) and (max_batches is None or batches < max_batches):
            await self.services.pauses.refresh(runtime)
            if runtime.gate.circuit.state == "open":
                self.report.status, self.report.error = RunStatus.ABORTED, "circuit open: provider failing"
                return
            batch = await self.store.lease_due(
                runtime.name, self.services.replica, sync.lease, sync.batch_size, self.only
            )
            if not batch:
                return
            batches += 1
            self.inflight.add(asyncio.create_task(self._process(batch)))
            if len(self.inflight) >= BATCHES_IN_FLIGHT and await self._settle(asyncio.FIRST_COMPLETED):
                return

    async def _abandon_dead_runs(self) -> None:
        for gone in await self.store.abandon_runs(self.runtime.name):
            log.warning(
                "sync.run_abandoned",
                provider=self.runtime.name,
                run_id=gone["id"],
                replica=gone["replica"],
                started_at=gone["started_at"].isoformat(),
                last_heartbeat=gone["heartbeat_at"].isoformat(),
            )

    async def _forget_long_deleted(self) -> None:
        """Users deleted more than ``forget_deleted_after`` ago stop being
        targets (the mirror keeps their deleted row)."""
        after = self.runtime.config.forget_deleted_after
        if after is None or self.only:
            return
        forgotten = await self.store.forget_deleted(self.runtime.name, after)
        if forgotten:
            self.log.info(
                "targets.forgotten",
                targets=len(forgotten),
                forget_deleted_after=after,
                sample=forgotten[:5],
            )

    async def _renew_leases(self) -> None:
        """Every third of the lease, extend the leases this pass holds and stamp
        its run's heartbeat (a run without one for two leases is abandoned)."""
        lease = self.services.sync.lease
        while True:
            await asyncio.sleep(max(lease / 3, 0.1))
            try:
                await self.store.renew_leases(
                    self.services.replica, self.runtime.name, lease_seconds=lease, run_id=self.report.run_id
                )
            except StoreUnavailable:
                pass  # the pass itself will notice; the leases then simply expire
            except Exception as exc:  # a failed renewal must not end the renewals
                # e.g. a statement timeout or a server gone read-only: try again next
                # time; meanwhile the leases run down and peers may take rows over
                log.warning(
                    "sync.lease_renewal_failed",
                    provider=self.runtime.name,
                    replica=self.services.replica,
                    error=f"{exc.__class__.__name__}: {exc}",
                )

    async def _process(self, batch: Sequence[Any]) -> AuthError | None:
        """Fetch, plan and write one leased batch; returns an auth failure, if any."""
        outcomes = await fetch_batch(self.runtime, batch)
        plan = await write_outcomes(self.services, self.runtime, batch, outcomes)
        self.confirmed_deletions.extend(user_id for _, user_id in plan.deletions)
        # counted once written: a batch whose write failed wrote nothing
        self.report.add(plan.counts)
        if self.progress is not None:
            self.progress(len(batch))
        refusals = [o.error for o in outcomes if isinstance(o.error, AuthError)]
        # one that stops the pass (a 403, refused credentials) first: a flaky
        # 401 earlier in the batch must not hide it
        return next((e for e in refusals if e.stops_pass), refusals[0] if refusals else None)

    async def _settle(self, when: str) -> bool:
        """Wait for in-flight batches; True if the pass must stop (credentials refused)."""
        if not self.inflight:
            return False
        finished, _ = await asyncio.wait(self.inflight, return_when=when)
        stop = False
        for task in finished:
            self.inflight.discard(task)
            auth_failure = task.result()  # re-raises a batch's exception
            if auth_failure is not None and not auth_failure.stops_pass:
                # one user refused even after a renewal fails alone; but a batch
                # reports its first refusal, and the credentials may have been
                # declared refused after it: then the pass stops all the same
                auth = self.runtime.client.auth
                auth_failure = auth.refusal() if auth is not None else None
            if auth_failure is not None and self.report.status == RunStatus.OK:
                self.report.status = RunStatus.FAILED
                self.report.error = f"credentials rejected: {auth_failure}"
                self.log.error("provider.auth_failed", error=str(auth_failure))
                metrics.CREDENTIALS_REJECTED.labels(self.runtime.name).set(1)
                stop = True
        return stop

    async def _finish(self) -> None:
        runtime, report = self.runtime, self.report
        if runtime.gate.circuit.state != runtime.circuit_recorded:
            try:
                await self.store.set_circuit(runtime.name, runtime.gate.circuit.state)
                runtime.circuit_recorded = runtime.gate.circuit.state
            except StoreUnavailable:
                pass
        if report.status == RunStatus.OK:
            metrics.LAST_SUCCESS.labels(report.provider).set_to_current_time()
            metrics.CREDENTIALS_REJECTED.labels(report.provider).set(0)
        report.read_mode = runtime.reads.name + ("+feed" if runtime.config.refresh == "feed" else "")
        report.requests = sum(runtime.client.sent.values()) - self.sent_before
        try:
            if report.run_id is not None:
                await self.store.finish_run(
                    report.run_id,
                    status=report.status,
                    counts=report.counts,
                    error=report.error,
                    read_mode=report.read_mode,
                    requests=report.requests,
                )
        except StoreUnavailable as exc:
            self.log.warning("sync.run_not_recorded", error=str(exc))
        try:
            await self.store.release_leases(self.services.replica, report.provider)
        except StoreUnavailable:
            pass  # leases expire by themselves
        log_method = self.log.info if report.status == RunStatus.OK else self.log.error
        log_method(
            "sync.pass_finished",
            trigger=report.trigger,
            status=report.status,
            error=report.error,
            read_mode=report.read_mode,
            requests=report.requests,
            **report.counts,
        )
