"""The token flow's state machine with plain numbers for time, and the flow
itself against a scripted ``obtain`` (no token endpoint, no sleeping)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from syncd.errors import AuthError, RateLimited, TransientError
from syncd.http import TokenFlow, TokenState
from syncd.http.token_state import OBTAIN, Phase, Use, Wait
from syncd.timeutil import utcnow


def refused() -> AuthError:
    return AuthError("credentials refused by the token endpoint", provider="p", status=401)


# -- the state machine ------------------------------------------------------------------------
def test_a_new_flow_obtains_then_uses_the_token_until_shortly_before_expiry() -> None:
    state = TokenState("p", skew=30)
    assert state.next_step(0.0, seen=0) is OBTAIN
    state.obtained("t1", 600, now=0.0)
    assert state.phase is Phase.HELD
    assert state.next_step(569.0, seen=1) == Use("Bearer t1")
    assert state.next_step(570.0, seen=1) is OBTAIN  # renewed 30 s early


def test_a_short_lived_token_is_renewed_a_tenth_of_its_life_early() -> None:
    state = TokenState("p", skew=30)
    state.obtained("t", 60, now=0.0)
    assert state.valid(53.9) and not state.valid(54.0)


def test_a_refusal_fails_fast_for_its_window_then_asks_again() -> None:
    state = TokenState("p", refusal_ttl=30)
    error = refused()
    state.refused(error, now=0.0)
    with pytest.raises(AuthError) as caught:
        state.next_step(29.0, seen=1)
    assert caught.value is error and state.refusal(29.0) is error
    assert state.next_step(30.0, seen=1) is OBTAIN and state.refusal(30.0) is None


def test_a_failure_is_raised_to_waiters_queued_behind_it_and_waited_out_by_the_next() -> None:
    state = TokenState("p", failure_ttl=1.0)
    error = TransientError("token endpoint failed", provider="p", status=500)
    seen = state.attempts
    state.failed(error, now=10.0)
    with pytest.raises(TransientError):
        state.next_step(10.1, seen=seen)  # it failed while this one waited
    assert state.next_step(10.25, seen=state.attempts) == Wait(0.75)
    assert state.next_step(11.0, seen=state.attempts) is OBTAIN


def test_a_token_endpoint_pause_ahead_is_raised_not_waited() -> None:
    state = TokenState("p")
    limited = RateLimited("slow down", provider="p", status=429, retry_at=utcnow() + timedelta(minutes=1))
    state.failed(limited, now=0.0)
    with pytest.raises(RateLimited):
        state.next_step(0.5, seen=state.attempts)


def test_only_the_refused_token_is_forgotten() -> None:
    state = TokenState("p")
    state.obtained("new", 600, now=0.0)
    assert state.invalidate("Bearer old", None, now=1.0)  # a 401 for a token already replaced
    assert state.valid(1.0) == "Bearer new"
    assert state.invalidate("Bearer new", None, now=1.0)
    assert state.phase is Phase.EMPTY and state.renewing


def test_renewed_tokens_refused_again_and_again_mean_the_credentials_are_refused() -> None:
    state = TokenState("p", max_refused_renewals=3)
    state.obtained("t0", 600, now=0.0)  # the first token: its refusal is no renewal's
    for n in range(1, 4):
        assert state.invalidate(state.valid(0.0), refused(), now=0.0)
        state.obtained(f"t{n}", 600, now=0.0)
    assert state.refused_renewals == 2
    assert not state.invalidate(state.valid(0.0), refused(), now=0.0)  # the third renewal refused
    assert state.phase is Phase.REFUSED
    message = str(state.refusal(0.0))
    assert "credentials rejected (3 newly issued tokens in a row were refused too)" in message


def test_an_accepted_request_resets_the_count_of_refused_renewals() -> None:
    state = TokenState("p", max_refused_renewals=2)
    state.obtained("t0", 600, now=0.0)
    state.invalidate("Bearer t0", refused(), now=0.0)
    state.obtained("t1", 600, now=0.0)
    state.invalidate("Bearer t1", refused(), now=0.0)  # a renewal refused once
    state.obtained("t2", 600, now=0.0)
    state.accepted("Bearer t2")
    assert state.refused_renewals == 0
    assert state.invalidate("Bearer t2", refused(), now=0.0)


# -- the flow ---------------------------------------------------------------------------------
class ScriptedFlow(TokenFlow):
    """``obtain`` answers from a script: a token, or an error to raise."""

    def __init__(self, script: list[Any]) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        super().__init__("p", clock=lambda: self.now, sleep=self._sleep)
        self.script = script
        self.asked = 0

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def obtain(self, session: Any) -> tuple[str, float | None]:
        self.asked += 1
        await asyncio.sleep(0)  # let concurrent callers queue on the lock
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer, 600


async def test_concurrent_callers_share_one_token_request() -> None:
    flow = ScriptedFlow(["t1"])
    headers = await asyncio.gather(*(flow.headers(None) for _ in range(8)))  # type: ignore[arg-type]
    assert flow.asked == 1 and {h["Authorization"] for h in headers} == {"Bearer t1"}


async def test_workers_queued_behind_a_failure_fail_with_it_and_the_next_waits_its_window() -> None:
    error = TransientError("token endpoint failed", provider="p", status=503)
    flow = ScriptedFlow([error, "t2"])
    results = await asyncio.gather(*(flow.headers(None) for _ in range(4)), return_exceptions=True)  # type: ignore[arg-type]
    assert flow.asked == 1 and all(r is error for r in results)
    flow.now += 0.25
    assert (await flow.headers(None))["Authorization"] == "Bearer t2"  # type: ignore[arg-type]
    assert flow.slept == [0.75] and flow.asked == 2


async def test_a_refusal_is_not_asked_again_within_its_window() -> None:
    flow = ScriptedFlow([refused(), "t"])
    for _ in range(3):
        with pytest.raises(AuthError):
            await flow.headers(None)  # type: ignore[arg-type]
    assert flow.asked == 1 and flow.refusal() is not None
    flow.now += flow.state.refusal_ttl
    assert (await flow.headers(None))["Authorization"] == "Bearer t"  # type: ignore[arg-type]
