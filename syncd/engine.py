"""The one sync path: lease due targets, fetch, normalize, diff, write.

The daemon's scheduler, ``syncd resync`` and ``syncd demo`` all call
``Engine.sync``; nothing else syncs users.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import orjson
import structlog

from syncd import __version__, metrics
from syncd.config import Config, ProviderBase
from syncd.diff import patch, record_json_and_hash
from syncd.errors import (
    AuthError,
    BodyUnchanged,
    DocumentRefused,
    MalformedResponse,
    NotFound,
    ProviderError,
    StoreUnavailable,
    WriteRefused,
)
from syncd.http import BODY_CHECK, BodyCheck, Gate, ProviderClient, RetryPolicy, make_session
from syncd.identity import Identity, without_nul
from syncd.providers import REGISTRY
from syncd.store import RUN_COUNTS, ChangeSet, PauseState, Store, TargetUpdates
from syncd.sync.plan import (
    EVENT_NAMESPACE,
    STATUS_COUNTS,
    BatchPlan,
    DeletionVerdict,
    Outcome,
    PlanSettings,
    event_id,
    event_patch,
    event_payload,
    guard_deletions,
    note_failure,
    plan_batch,
    record_from_row,
    rows_needed,
)
from syncd.timeutil import utcnow

log = structlog.get_logger("syncd.engine")


def default_replica() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{random.getrandbits(16):04x}"


#: the last_error a target shows while its deletion waits for an admin, or was refused
DELETION_NOTES = {
    "deletion_held": "deletion held by the mass-deletion guard: run `syncd deletions approve`",
    "deletion_rejected": "deletion rejected by an admin: the user stays in the mirror until it answers again",
}

#: leased batches being fetched or written at once: while one finishes its
#: slowest fetches and its write, the next ones keep the provider's queue full
BATCHES_IN_FLIGHT = 3


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


@dataclass
class PassReport:
    provider: str
    trigger: str
    run_id: int | None = None
    status: str = "ok"
    error: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUN_COUNTS, 0))
    #: dry run: (user_id, change, patch)
    diffs: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)

    def summary(self) -> str:
        c = self.counts
        return (
            f"{self.provider}: fetched {c['fetched']}, created {c['created']}, updated {c['updated']}, "
            f"deleted {c['deleted']}, restored {c['restored']}, unchanged {c['unchanged']}, "
            f"failed {c['failed']}, not found {c['not_found']}, held {c['held']}"
        )


class Engine:
    def __init__(self, store: Store, config: Config, *, replica: str | None = None) -> None:
        self.store = store
        self.config = config
        self.replica = replica or config.daemon.replica or default_replica()
        self.runtimes: dict[str, ProviderRuntime] = {}
        self._listener: contextlib.AsyncExitStack | None = None
        #: the LISTEN connection for peers' pauses is up (else read provider_state
        #: before every batch); ``peers_lost`` is set when it goes (the daemon reconnects)
        self.listening = False
        self.peers_lost = asyncio.Event()
        self._peer_conn: Any = None
        #: pauses read again after a NOTIFY hint (for tests and the curious)
        self.hints_read = 0

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        for pc in self.config.providers:
            rt = open_runtime(pc)
            rt.gate.on_pause = share_pause(self.store, pc.name)
            self.runtimes[pc.name] = rt
        await self.listen_for_peers()

    async def listen_for_peers(self) -> None:
        """Hear other replicas' Retry-After pauses the moment they are recorded
        (before each batch the pause is also read from provider_state)."""
        self._peer_conn = None  # its closing below is on purpose, not a loss
        self._deaf()  # until listening again, read provider_state before every batch
        if self._listener is not None:
            await self._listener.aclose()
            self._listener = None
        self.peers_lost = asyncio.Event()
        stack = contextlib.AsyncExitStack()
        try:
            conn = await stack.enter_async_context(
                self.store.listen({"syncd_provider_state": self.apply_remote_pause})
            )
        except StoreUnavailable as exc:
            log.warning("engine.listen_failed", error=str(exc))
            await stack.aclose()
            self.peers_lost.set()  # the daemon tries again
            return
        self._peer_conn = conn
        conn.add_termination_listener(lambda c: self._peers_gone() if c is self._peer_conn else None)
        self._listener = stack
        self.listening = True

    def _peers_gone(self) -> None:
        """The LISTEN connection for peers' pauses terminated on its own."""
        log.warning("engine.listen_lost", replica=self.replica)
        self._deaf()
        self.peers_lost.set()

    def _deaf(self) -> None:
        self.listening = False
        for rt in self.runtimes.values():
            rt.pause_checked = False  # a pause may have been announced while deaf

    async def close(self) -> None:
        if self._listener is not None:
            self._peer_conn = None  # closing it on purpose
            self.listening = False
            await self._listener.aclose()
            self._listener = None
        for rt in self.runtimes.values():
            if rt.pause_reread is not None:
                rt.pause_reread.cancel()
                await asyncio.gather(rt.pause_reread, return_exceptions=True)
            await rt.close()
        self.runtimes.clear()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def apply_remote_pause(self, payload: str) -> None:
        """A NOTIFY on ``syncd_provider_state`` (``"<provider> …"``): only a hint
        that the provider's pause changed. Any database role may NOTIFY, so
        nothing in the payload is believed: the pause is read again from
        ``provider_state``, which only syncd's own role can write. One read
        per provider at a time, however many hints arrive (a flood of them
        must not take the pool from the passes)."""
        name = payload.split(" ", 1)[0]
        rt = self.runtimes.get(name)
        if rt is None:
            return
        rt.pause_hinted = True
        if rt.pause_reread is None or rt.pause_reread.done():
            rt.pause_reread = asyncio.get_running_loop().create_task(
                self._reread_pause(rt), name=f"pause:{name}"
            )

    async def _reread_pause(self, rt: ProviderRuntime) -> None:
        while rt.pause_hinted:
            rt.pause_hinted = False
            try:
                state = await self.store.pause_state(rt.name)
            except Exception as exc:  # the pool closing, the database gone
                rt.pause_checked = False  # read it again before the next batch
                log.warning("provider.pause_not_read", provider=rt.name, error=str(exc))
                return
            was = rt.gate.paused_until if rt.gate.paused() else None
            until = adopt_pause(rt, state)
            self.hints_read += 1
            if until is not None and (was is None or until > was):
                log.info("provider.paused_by_peer", provider=rt.name, until=until.isoformat())
            elif until is None and was is not None:
                log.info("provider.pause_cleared", provider=rt.name)

    def runtime(self, name: str) -> ProviderRuntime:
        if name not in self.runtimes:
            self.config.provider(name)  # raises a ConfigError naming the known ones
            raise KeyError(name)
        return self.runtimes[name]

    async def register_config_targets(self) -> None:
        """A provider's ``user_ids`` from the config are always targets."""
        for pc in self.config.providers:
            if pc.user_ids:
                await self.store.add_targets(pc.name, pc.user_ids)

    # -- the sync pass --------------------------------------------------------------
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
        """Sync every due target of ``provider`` (or only ``only``) until none is due."""
        rt = self.runtime(provider)
        rt.pause_checked = False
        report = PassReport(provider, trigger)
        for gone in await self.store.abandon_runs(provider):
            log.warning(
                "sync.run_abandoned",
                provider=provider,
                run_id=gone["id"],
                replica=gone["replica"],
                started_at=gone["started_at"].isoformat(),
                last_heartbeat=gone["heartbeat_at"].isoformat(),
            )
        report.run_id = await self.store.start_run(provider, trigger, self.replica, self.config.sync.lease)
        bound = log.bind(provider=provider, replica=self.replica, run_id=report.run_id)
        deletions: list[tuple[Any, str]] = []
        inflight: set[asyncio.Task[AuthError | None]] = set()
        batches = 0
        renewer = asyncio.create_task(self._renew_leases(provider, report.run_id), name=f"renew:{provider}")
        try:
            while not (stop and stop.is_set()) and (max_batches is None or batches < max_batches):
                await self._refresh_pause(rt)
                if rt.gate.circuit.state == "open":
                    report.status, report.error = "aborted", "circuit open: provider failing"
                    break
                batch = await self.store.lease_due(
                    provider, self.replica, self.config.sync.lease, self.config.sync.batch_size, only
                )
                if not batch:
                    break
                batches += 1
                inflight.add(asyncio.create_task(self._process(rt, batch, report, deletions, progress)))
                if len(inflight) >= BATCHES_IN_FLIGHT and await self._settle(
                    inflight, report, bound, asyncio.FIRST_COMPLETED
                ):
                    break
            await self._settle(inflight, report, bound, asyncio.ALL_COMPLETED)
            if deletions:
                await self._apply_deletions(rt, deletions, report)
        except BaseException as exc:
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)
            report.status = "failed"
            report.error = f"{exc.__class__.__name__}: {exc}"
            await self._finish(report, bound)
            raise
        finally:
            renewer.cancel()
        await self._finish(report, bound)
        return report

    async def _renew_leases(self, provider: str, run_id: int | None) -> None:
        """Every third of the lease, extend the leases this pass holds and stamp
        its run's heartbeat (a run without one for two leases is abandoned)."""
        lease = self.config.sync.lease
        while True:
            await asyncio.sleep(max(lease / 3, 0.1))
            try:
                await self.store.renew_leases(self.replica, provider, lease_seconds=lease, run_id=run_id)
            except StoreUnavailable:
                pass  # the pass itself will notice; the leases then simply expire
            except Exception as exc:  # a failed renewal must not end the renewals
                # e.g. a statement timeout or a server gone read-only: try again next
                # time; meanwhile the leases run down and peers may take rows over
                log.warning(
                    "sync.lease_renewal_failed",
                    provider=provider,
                    replica=self.replica,
                    error=f"{exc.__class__.__name__}: {exc}",
                )

    async def _process(
        self,
        rt: ProviderRuntime,
        batch: Sequence[Any],
        report: PassReport,
        deletions: list[tuple[Any, str]],
        progress: Callable[[int], None] | None,
    ) -> AuthError | None:
        """Fetch, diff and write one leased batch; returns an auth failure, if any."""
        outcomes = await self._fetch_all(rt, batch)
        plan = await self.plan(rt, outcomes)
        if plan.rehash:
            await self.store.rehash(rt.name, plan.rehash)
        deletions.extend(plan.deletions)
        counts, came_back = plan.counts, plan.came_back
        refused = await self._write(rt, plan.changes, plan.targets, {t["user_id"]: t for t in batch})
        for counted in refused.values():
            if counted != "failed":  # a failure already counted stays one
                counts[counted] -= 1
                counts["failed"] += 1
        # counted once written: a batch whose write failed wrote nothing
        for k, v in counts.items():
            report.counts[k] += v
        if came_back:
            # users that answer again after 404s: a held or rejected deletion is moot
            await self.store.clear_pending_deletions(rt.name, came_back)
        if progress is not None:
            progress(len(batch))
        refusals = [o.error for o in outcomes if isinstance(o.error, AuthError)]
        # one that stops the pass (a 403, refused credentials) first: a flaky
        # 401 earlier in the batch must not hide it
        return next((e for e in refusals if e.stops_pass), refusals[0] if refusals else None)

    async def _settle(
        self, inflight: set[asyncio.Task[AuthError | None]], report: PassReport, bound: Any, when: str
    ) -> bool:
        """Wait for in-flight batches; True if the pass must stop (credentials refused)."""
        if not inflight:
            return False
        done, _ = await asyncio.wait(inflight, return_when=when)
        stop = False
        for task in done:
            inflight.discard(task)
            auth_failure = task.result()  # re-raises a batch's exception
            if auth_failure is not None and not auth_failure.stops_pass:
                # one user refused even after a renewal fails alone; but a batch
                # reports its first refusal, and the credentials may have been
                # declared refused after it: then the pass stops all the same
                rt = self.runtimes.get(report.provider)
                auth = rt.client.auth if rt is not None else None
                auth_failure = auth.refusal() if auth is not None else None
            if auth_failure is not None and report.status == "ok":
                report.status, report.error = "failed", f"credentials rejected: {auth_failure}"
                bound.error("provider.auth_failed", error=str(auth_failure))
                stop = True
        return stop

    async def _finish(self, report: PassReport, bound: Any) -> None:
        rt = self.runtimes.get(report.provider)
        if rt is not None and rt.gate.circuit.state != rt.circuit_recorded:
            try:
                await self.store.set_circuit(rt.name, rt.gate.circuit.state)
                rt.circuit_recorded = rt.gate.circuit.state
            except StoreUnavailable:
                pass
        if report.status == "ok":
            metrics.LAST_SUCCESS.labels(report.provider).set_to_current_time()
        try:
            if report.run_id is not None:
                await self.store.finish_run(
                    report.run_id, status=report.status, counts=report.counts, error=report.error
                )
        except StoreUnavailable as exc:
            bound.warning("sync.run_not_recorded", error=str(exc))
        try:
            await self.store.release_leases(self.replica, report.provider)
        except StoreUnavailable:
            pass  # leases expire by themselves
        log_method = bound.info if report.status == "ok" else bound.error
        log_method(
            "sync.pass_finished",
            trigger=report.trigger,
            status=report.status,
            error=report.error,
            **report.counts,
        )

    async def _refresh_pause(self, rt: ProviderRuntime) -> None:
        """Another replica may have paused the provider: read it before a batch
        (once per pass when we LISTEN, since peers' pauses then arrive at once)."""
        if self.listening and rt.pause_checked:
            return
        rt.pause_checked = True
        adopt_pause(rt, await self.store.pause_state(rt.name))

    async def _fetch_all(self, rt: ProviderRuntime, batch: Sequence[Any]) -> list[Outcome]:
        """Fetch a batch with ``concurrency`` workers that take its targets in
        turn (the gate still bounds the provider's requests across batches).
        Not a task per target: creating and gathering a thousand tasks per
        batch was 5 % of syncd's instructions per user (callgrind). Nor one
        pool of ``concurrency`` workers per pass: a worker mapping and hashing
        its answer holds no request slot, and with no other worker waiting
        for it fewer requests were in flight (a first sync 15 % slower); the
        workers of the batches in flight outnumber the slots and keep them full."""
        outcomes: list[Any] = [None] * len(batch)
        todo = iter(enumerate(batch))

        async def worker() -> None:
            for i, target in todo:
                outcomes[i] = await self._fetch_one(rt, target)

        workers = [asyncio.ensure_future(worker()) for _ in range(min(len(batch), rt.config.concurrency))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            # a worker's crash (a bug: errors are outcomes) stops the others, and
            # they are gone, their gate slots given back, before the error goes on
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return outcomes

    async def _fetch_one(self, rt: ProviderRuntime, target: Any) -> Outcome:
        user_id = target["user_id"]
        # the same bytes as last time mean the same user: skip parsing and mapping,
        # but only while the mirror row is there to be "unchanged" against
        mirrored = target["content_hash"] is not None and target["deleted_at"] is None
        check = BodyCheck(rt.salt, target.get("body_hash") if mirrored else None)
        token = BODY_CHECK.set(check)
        try:
            identity = await _adapter_fetch(rt, user_id)
        except BodyUnchanged:
            return Outcome(target, same_body=True, body_hash=check.observed)
        except ProviderError as exc:
            # a 404 is an outcome, and a refused token is logged once per pass
            if not isinstance(exc, NotFound | AuthError):
                exc.provider = exc.provider or rt.name
                log.warning(
                    "user.fetch_failed",
                    provider=rt.name,
                    user_id=user_id,
                    error=str(exc),
                    error_type=exc.__class__.__name__,
                    status=exc.status,
                    tracking_id=exc.tracking_id,
                )
            return Outcome(target, error=exc)
        finally:
            BODY_CHECK.reset(token)
        if identity.user_id != user_id:
            # exact: ids are case-sensitive (SCIM "id" is caseExact, RFC 7643 §3.1),
            # and another user's answer must never be mirrored under this id
            err = ProviderError(f"asked for user {user_id!r}, got {identity.user_id!r}", provider=rt.name)
            log.warning("user.fetch_failed", provider=rt.name, user_id=user_id, error=str(err))
            return Outcome(target, error=err)
        try:
            record, h = _record(rt, identity)
        except ProviderError as exc:
            log.warning(
                "user.document_refused",
                provider=rt.name,
                user_id=user_id,
                error=str(exc),
                error_type=exc.__class__.__name__,
            )
            return Outcome(target, error=exc, body_hash=None)
        return Outcome(
            target, record=record, content_hash=h, version=identity.source_version, body_hash=check.observed
        )

    def settings(self, rt: ProviderRuntime) -> PlanSettings:
        """What the pure plan reads from the config, for this provider."""
        cfg, sync = rt.config, self.config.sync
        return PlanSettings(
            provider=rt.name,
            provider_type=cfg.type,  # type: ignore[attr-defined]
            ignore=rt.ignore,
            interval=cfg.interval,
            error_retry=sync.error_retry,
            circuit_cooldown=rt.gate.circuit.cooldown,
            delete_confirmations=sync.delete_confirmations,
            delete_confirm_after=sync.delete_confirm_after,
            quarantine_after=sync.quarantine_after,
            max_delete_fraction=sync.max_delete_fraction,
            max_delete_count=sync.max_delete_count,
        )

    async def plan(self, rt: ProviderRuntime, outcomes: Sequence[Outcome]) -> BatchPlan:
        """Read the mirror rows the plan needs, then plan the batch (pure)."""
        rows = await self.store.mirror_rows(rt.name, rows_needed(outcomes))
        return plan_batch(outcomes, rows, self.settings(rt), utcnow())

    async def _write(
        self, rt: ProviderRuntime, changes: ChangeSet, done: TargetUpdates, targets: dict[str, Any]
    ) -> dict[str, str]:
        """Write a batch in parts of at most ``write_batch_bytes`` of JSON; a part
        PostgreSQL refuses for its content is bisected down to the one user at
        fault, whose failure is written instead. Returns the refused users and
        the change each would have made (to correct the pass's counts)."""
        refused: dict[str, str] = {}
        for part in changes.split(done, self.config.sync.write_batch_bytes):
            await self._write_part(rt, *part, targets, refused)
        for type_ in set(changes.types):
            metrics.EVENTS.labels(rt.name, type_).inc(changes.types.count(type_))
        for status in set(done.statuses):
            metrics.USERS.labels(rt.name, status).inc(done.statuses.count(status))
        return refused

    async def _write_part(
        self,
        rt: ProviderRuntime,
        changes: ChangeSet,
        done: TargetUpdates,
        targets: dict[str, Any],
        refused: dict[str, str],
    ) -> None:
        try:
            await self.store.write_batch(rt.name, self.replica, changes, done)
            return
        except WriteRefused as exc:
            users = done.user_ids()
            if len(users) > 1:
                log.warning("sync.write_bisected", provider=rt.name, users=len(users), error=str(exc))
                half = len(users) // 2
                for part in (users[:half], users[half:]):
                    await self._write_part(rt, changes.subset(part), done.subset(part), targets, refused)
                return
            uid = users[0]
            err = DocumentRefused(f"PostgreSQL refused this user's write: {exc}", provider=rt.name)
        log.error("user.write_refused", provider=rt.name, user_id=uid, error=str(err))
        kinds = dict(zip(changes.user_ids, changes.types, strict=True))
        status = done.statuses[0] if done.statuses else "error"
        counted = kinds[uid].removeprefix("user.") if uid in kinds else STATUS_COUNTS.get(status, "failed")
        refused[uid] = counted
        failure = TargetUpdates.empty()
        note_failure(failure, targets[uid], err, self.settings(rt))
        await self.store.write_batch(rt.name, self.replica, ChangeSet.empty(), failure)

    async def _apply_deletions(
        self, rt: ProviderRuntime, deletions: list[tuple[Any, str]], report: PassReport
    ) -> None:
        """Confirmed deletions of a pass go through the mass-deletion guard.

        A deletion already held waits for `syncd deletions approve` (a later
        pass that confirms it again must not carry it out), one an admin
        rejected is not made while the user keeps answering 404, and deletions
        held but not yet decided count against the guard's limit: the
        schedule spreads a provider's users over many small passes, and a
        mass deletion must not slip through a few users per pass."""
        sync = self.config.sync
        ids = [uid for _, uid in deletions]
        verdict = await self._guard(rt, ids)
        if verdict.rejected:
            await self._note_deletions(rt.name, verdict.rejected, "deletion_rejected")
        if verdict.already_held:
            await self._note_deletions(rt.name, verdict.already_held, "deletion_held")
        report.counts["held"] += len(verdict.hold) + len(verdict.already_held)
        if verdict.mass_held:
            await self.store.hold_deletions(rt.name, verdict.hold, run_id=report.run_id)
            await self._note_deletions(rt.name, verdict.hold, "deletion_held")
            log.error(
                "sync.mass_deletion_held",
                provider=rt.name,
                would_delete=len(verdict.hold),
                already_held=len(verdict.already_held),
                max_delete_fraction=sync.max_delete_fraction,
                max_delete_count=sync.max_delete_count,
                hint=f"syncd deletions approve --provider {rt.name}",
            )
        if verdict.delete:
            report.counts["deleted"] += await self.delete_users(rt, verdict.delete)

    async def _guard(self, rt: ProviderRuntime, ids: Sequence[str]) -> DeletionVerdict:
        """The mass-deletion guard's verdict (pure) on the mirror as it is now."""
        if not ids:
            return DeletionVerdict([], [], [], [])
        decided = await self.store.decided_deletions(rt.name, ids)
        counts = await self.store.mirror_counts(rt.name, window=rt.config.interval)
        return guard_deletions(ids, decided, *counts, self.settings(rt))

    async def _note_deletions(self, provider: str, ids: Sequence[str], status: str) -> None:
        """Show on the targets that their deletion waits for an admin, or was refused."""
        await self.store.set_target_status(provider, ids, status, DELETION_NOTES[status])

    async def decide_held_deletions(
        self, provider: str, ids: Sequence[str], *, approve: bool
    ) -> tuple[int, int, int]:
        """An admin's answer to held deletions (`syncd deletions approve|reject`).

        The users are leased first: a pass that holds one of them decides it
        itself (neither may undo the other's write). Approving deletes those
        that still answer 404 (a user who came back is kept); rejecting keeps
        them in the mirror while they answer 404. Returns (deleted or
        rejected, kept because they came back, busy in a pass)."""
        rt = self.runtime(provider)
        leased = await self.store.lease_ids(provider, self.replica, self.config.sync.lease, ids)
        busy = len(ids) - len(leased)
        try:
            if not approve:
                await self.store.reject_deletions(provider, leased)
                await self._note_deletions(provider, leased, "deletion_rejected")
                return len(leased), 0, busy
            still_gone = await self.store.still_not_found(provider, leased)
            deleted = await self.delete_users(rt, still_gone)
            await self.store.clear_pending_deletions(provider, leased)
            return deleted, len(leased) - len(still_gone), busy
        finally:
            await self.store.release_leases(self.replica, provider)

    async def delete_users(self, rt: ProviderRuntime, ids: Sequence[str]) -> int:
        """Write ``user.deleted`` events and mark the mirror rows deleted (only
        for targets this engine leases: see write_batch)."""
        rows = await self.store.mirror_rows(rt.name, ids)
        changes = ChangeSet.empty()
        observed = utcnow().isoformat()
        for uid, row in rows.items():
            if row["deleted_at"] is not None:
                continue
            payload = event_payload(
                self.settings(rt), uid, row["source_version"], record_from_row(row), None, observed
            )
            eid = event_id(rt.name, uid, "deleted", row["content_hash"], None, row["changed_at"])
            size = len(orjson.dumps(payload["before"]))
            changes.add(uid, eid, "user.deleted", payload, row["content_hash"], size=size)
        if changes:
            for part, _ in changes.split(TargetUpdates.empty(), self.config.sync.write_batch_bytes):
                await self.store.write_batch(rt.name, self.replica, part, TargetUpdates.empty())
            metrics.EVENTS.labels(rt.name, "user.deleted").inc(len(changes))
        await self.store.set_target_status(rt.name, ids, "deleted", None)
        return len(changes)

    # -- dry run ---------------------------------------------------------------------
    async def dry_run(
        self,
        provider: str,
        *,
        only: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PassReport:
        """Fetch and diff, write nothing: what a resync would change."""
        rt = self.runtime(provider)
        rt.pause_checked = False
        await self._refresh_pause(rt)  # another replica's Retry-After holds for a dry run too
        report = PassReport(provider, "dry-run")
        deletions: list[str] = []
        after = ""
        while True:
            targets = await self.store.peek_targets(
                provider, only=only, limit=self.config.sync.batch_size, after=after
            )
            if not targets:
                break
            after = targets[-1]["user_id"]
            outcomes = await self._fetch_all(rt, targets)
            # the very plan a pass makes of these answers: a preview can't disagree
            plan = await self.plan(rt, outcomes)
            for k, v in plan.counts.items():
                report.counts[k] += v
            records = {o.target["user_id"]: o.record or b"" for o in outcomes}
            for uid, _, type_, payload, _ in plan.changes.rows:
                report.diffs.append((uid, type_.removeprefix("user."), event_patch(payload, records[uid])))
            for uid, status, error, *_ in plan.targets.rows:
                if status in ("error", "refused", "quarantined"):
                    report.diffs.append((uid, f"error: {error}", []))
                elif status == "not_found_unconfirmed":
                    report.diffs.append((uid, "not found (deletion not confirmed yet)", []))
            deletions += [uid for _, uid in plan.deletions]
            if progress is not None:
                progress(len(targets))
        verdict = await self._guard(rt, deletions)
        report.counts["held"] += len(verdict.hold) + len(verdict.already_held)
        report.counts["deleted"] += len(verdict.delete)
        rows = await self.store.mirror_rows(provider, verdict.delete)
        for uid in verdict.delete:
            report.diffs.append(
                (uid, "deleted", patch(record_from_row(rows[uid]), None) if uid in rows else [])
            )
        for uid in verdict.hold + verdict.already_held:
            report.diffs.append((uid, "deletion held by the mass-deletion guard", []))
        return report


def adopt_pause(rt: ProviderRuntime, state: PauseState) -> datetime | None:
    """Adopt ``provider_state``'s pause (the one every replica shares), capped
    at ``retry_after_cap`` from now whoever wrote it. It only extends this
    process's pause, except that a new admin clear (`syncd pause clear`)
    drops it, once. Returns the pause in force."""
    now = utcnow()
    if state.cleared:
        if state.changed_at != rt.clear_seen:
            rt.clear_seen = state.changed_at
            rt.gate.set_pause(None)
        return rt.gate.paused_until if rt.gate.paused() else None
    until = state.until
    if until is None or until <= now:
        return rt.gate.paused_until if rt.gate.paused() else None
    cap = now + timedelta(seconds=rt.config.retry_after_cap)
    if until > cap:
        log.warning(
            "provider.pause_capped",
            provider=rt.name,
            recorded_until=until.isoformat(),
            cap_seconds=rt.config.retry_after_cap,
        )
        until = cap
    rt.gate.apply_pause(until)
    return rt.gate.paused_until


def share_pause(store: Store, provider: str) -> Callable[[datetime, str], Awaitable[None]]:
    """A gate's ``on_pause``: record a Retry-After pause in provider_state,
    where every replica (and ``syncd check``) reads it."""

    async def share(until: datetime, reason: str) -> None:
        metrics.RATE_LIMIT_WAIT.labels(provider).inc(max(0.0, (until - utcnow()).total_seconds()))
        try:
            await store.set_pause(provider, until, reason)
        except StoreUnavailable as exc:  # the local pause still holds
            log.warning("provider.pause_not_shared", provider=provider, error=str(exc))

    return share


async def _adapter_fetch(rt: ProviderRuntime, user_id: str) -> Identity:
    """The adapter's fetch; an adapter that chokes on a body it did not expect
    (say a JSON array) gives that user's error, not the whole pass's."""
    try:
        return await rt.adapter.fetch(user_id)
    except (BodyUnchanged, ProviderError):
        raise
    except Exception as exc:
        raise MalformedResponse(
            f"could not map the provider's answer: {exc.__class__.__name__}: {exc}", provider=rt.name
        ) from exc


def _record(rt: ProviderRuntime, identity: Identity) -> tuple[bytes, str]:
    """The record's canonical JSON and hash, or that user's ``DocumentRefused``:
    every step after the fetch fails for the one user, never for the batch."""
    try:
        record, h = record_json_and_hash(identity, rt.ignore)
        if b"\\u0000" in record:
            # PostgreSQL can store no NUL character in text or jsonb: one such
            # string would fail the whole batch's write, pass after pass
            identity = without_nul(identity)
            record, h = record_json_and_hash(identity, rt.ignore)
            log.warning("user.nul_replaced", provider=rt.name, user_id=identity.user_id)
    except Exception as exc:  # orjson's depth or type limits, a mapping bug
        raise DocumentRefused(
            f"could not encode the provider's document: {exc.__class__.__name__}: {exc}", provider=rt.name
        ) from exc
    limit = rt.config.max_document_bytes
    if len(record) > limit:
        raise DocumentRefused(
            f"document too large to store: {len(record)} bytes > max_document_bytes ({limit})",
            provider=rt.name,
        )
    return record, h


__all__ = ["EVENT_NAMESPACE", "Engine", "PassReport", "ProviderRuntime", "event_id", "open_runtime"]
