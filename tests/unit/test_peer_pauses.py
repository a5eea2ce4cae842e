"""What the peers' pauses do when the LISTEN connection comes and goes: while
nobody listens, provider_state is read before every batch; once listening,
once more (for what was recorded meanwhile), then once per pass. A stand-in
store counts the reads; no database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import structlog

from syncd.errors import StoreUnavailable
from syncd.store import PauseState
from syncd.sync.pauses import CHANNEL, PeerPauses


class Gate:
    paused_until = None

    def paused(self) -> bool:
        return False


@dataclass
class Runtime:
    name: str
    gate: Gate = field(default_factory=Gate)
    pause_checked: bool = False
    pause_reread: Any = None


class Store:
    def __init__(self) -> None:
        self.reads = 0

    async def pause_state(self, provider: str) -> PauseState:
        self.reads += 1
        return PauseState(until=None, cleared=False, changed_at=None)


def pauses() -> tuple[PeerPauses, Store, Runtime]:
    store, runtime = Store(), Runtime("corp")
    return PeerPauses(cast(Any, store), cast(Any, {"corp": runtime}), "r1"), store, cast(Any, runtime)


async def batches(p: PeerPauses, runtime: Runtime, n: int) -> None:
    for _ in range(n):
        await p.refresh(cast(Any, runtime))


async def test_not_listening_reads_provider_state_before_every_batch():
    p, store, runtime = pauses()
    await batches(p, runtime, 3)
    assert store.reads == 3


async def test_listening_reads_once_more_then_once_per_pass():
    """A pause recorded before LISTEN was in force is read by the next batch."""
    p, store, runtime = pauses()
    await batches(p, runtime, 1)  # while connecting
    sub = p.subscription()
    assert sub.channel == CHANNEL
    sub.on_listening()
    assert p.listening
    await batches(p, runtime, 3)
    assert store.reads == 1 + 1
    runtime.pause_checked = False  # a new pass
    await batches(p, runtime, 2)
    assert store.reads == 3


async def test_a_lost_connection_reads_before_every_batch_until_listening_again():
    p, store, runtime = pauses()
    sub = p.subscription()
    sub.on_listening()
    await batches(p, runtime, 2)
    with structlog.testing.capture_logs() as logs:
        sub.on_lost(None)
    assert not p.listening
    assert [e["event"] for e in logs] == ["engine.listen_lost"]
    await batches(p, runtime, 3)
    assert store.reads == 1 + 3
    sub.on_listening()
    await batches(p, runtime, 2)
    assert store.reads == 1 + 3 + 1


async def test_a_failed_attempt_to_listen_is_logged_as_such():
    p, _, _ = pauses()
    with structlog.testing.capture_logs() as logs:
        p.subscription().on_lost(StoreUnavailable("connection refused"))
    assert [(e["event"], e["error"]) for e in logs] == [("engine.listen_failed", "connection refused")]
    assert not p.listening
