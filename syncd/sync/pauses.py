"""The pause every replica shares: hearing peers' ``Retry-After`` pauses,
adopting what ``provider_state`` records, and recording our own.

A ``NOTIFY syncd_provider_state`` is only a hint (any database role may
NOTIFY): the pause is read again from ``provider_state``, which only syncd's
own role can write, and capped at ``retry_after_cap`` whoever wrote it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import structlog

from syncd import metrics
from syncd.errors import StoreUnavailable
from syncd.store import PauseState, Store
from syncd.store.listener import Subscription
from syncd.sync.runtime import ProviderRuntime
from syncd.timeutil import utcnow

log = structlog.get_logger("syncd.engine")

CHANNEL = "syncd_provider_state"


class PeerPauses:
    """Keeps each provider's gate in step with the pause in ``provider_state``.

    It owns no connection: ``subscription`` is what the process's one
    LISTEN connection (``syncd.store.listener.Notifications``) delivers to it."""

    def __init__(self, store: Store, runtimes: Mapping[str, ProviderRuntime], replica: str) -> None:
        self.store = store
        self.runtimes = runtimes
        self.replica = replica
        #: the LISTEN connection is up (else provider_state is read before every batch)
        self.listening = False
        #: pauses read again after a NOTIFY hint (for tests and the curious)
        self.hints_read = 0

    def subscription(self) -> Subscription:
        """Hear other replicas' pauses the moment they are recorded."""
        return Subscription(
            channel=CHANNEL, on_notify=self.hint, on_listening=self._heard, on_lost=self._lost
        )

    def _heard(self) -> None:
        """LISTEN is in force: a pause recorded from now on arrives as a hint;
        one recorded before (while connecting, or while the connection was
        gone) is read by the next batch of each provider."""
        self._forget_checks()
        self.listening = True

    def _lost(self, error: Exception | None) -> None:
        if error is None:
            log.warning("engine.listen_lost", replica=self.replica)
        else:
            log.warning("engine.listen_failed", error=str(error))
        self._forget_checks()

    def _forget_checks(self) -> None:
        self.listening = False
        for runtime in self.runtimes.values():
            runtime.pause_checked = False  # a pause may have been announced while not listening

    async def close(self) -> None:
        self.listening = False
        for runtime in self.runtimes.values():
            if runtime.pause_reread is not None:
                runtime.pause_reread.cancel()
                await asyncio.gather(runtime.pause_reread, return_exceptions=True)

    def hint(self, payload: str) -> None:
        """A NOTIFY (``"<provider> …"``): read that provider's pause again. One
        read per provider at a time, however many hints arrive (a flood of
        them must not take the pool from the passes)."""
        runtime = self.runtimes.get(payload.split(" ", 1)[0])
        if runtime is None:
            return
        runtime.pause_hinted = True
        if runtime.pause_reread is None or runtime.pause_reread.done():
            runtime.pause_reread = asyncio.get_running_loop().create_task(
                self._reread(runtime), name=f"pause:{runtime.name}"
            )

    async def _reread(self, runtime: ProviderRuntime) -> None:
        while runtime.pause_hinted:
            runtime.pause_hinted = False
            try:
                state = await self.store.pause_state(runtime.name)
            except Exception as exc:  # the pool closing, the database gone
                runtime.pause_checked = False  # read it again before the next batch
                log.warning("provider.pause_not_read", provider=runtime.name, error=str(exc))
                return
            was = runtime.gate.paused_until if runtime.gate.paused() else None
            until = adopt_pause(runtime, state)
            self.hints_read += 1
            if until is not None and (was is None or until > was):
                log.info("provider.paused_by_peer", provider=runtime.name, until=until.isoformat())
            elif until is None and was is not None:
                log.info("provider.pause_cleared", provider=runtime.name)

    async def refresh(self, runtime: ProviderRuntime) -> None:
        """Another replica may have paused the provider: read it before a batch
        (once per pass while listening, since peers' pauses then arrive at once)."""
        if self.listening and runtime.pause_checked:
            return
        runtime.pause_checked = True
        adopt_pause(runtime, await self.store.pause_state(runtime.name))


def adopt_pause(runtime: ProviderRuntime, state: PauseState) -> datetime | None:
    """Adopt ``provider_state``'s pause, capped at ``retry_after_cap`` from
    now. It only extends this process's pause, except that a new admin clear
    (`syncd pause clear`) drops it, once. Returns the pause in force."""
    gate = runtime.gate
    if state.cleared:
        if state.changed_at != runtime.clear_seen:
            runtime.clear_seen = state.changed_at
            gate.set_pause(None)
        return gate.paused_until if gate.paused() else None
    now = utcnow()
    until = state.until
    if until is None or until <= now:
        return gate.paused_until if gate.paused() else None
    cap = now + timedelta(seconds=runtime.config.retry_after_cap)
    if until > cap:
        log.warning(
            "provider.pause_capped",
            provider=runtime.name,
            recorded_until=until.isoformat(),
            cap_seconds=runtime.config.retry_after_cap,
        )
        until = cap
    gate.apply_pause(until, "a Retry-After another replica recorded")
    return gate.paused_until


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
