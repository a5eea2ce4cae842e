"""The daemon's waits after failures: the one RetryPolicy, a fixed clock,
no sleeping."""

from __future__ import annotations

import pytest

from syncd.http import RetryPolicy
from syncd.service.backoff import Backoff

POLICY = RetryPolicy(backoff_base=0.2, backoff_cap=0.8)
CEILINGS = (0.2, 0.4, 0.8, 0.8, 0.8)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lowest(**kw: float) -> RetryPolicy:
    """The policy with its draw at its lowest."""
    return RetryPolicy(**kw, uniform=lambda a, b: a)


def highest(**kw: float) -> RetryPolicy:
    """The policy with its draw at its highest: the full ceiling."""
    return RetryPolicy(**kw, uniform=lambda a, b: b)


@pytest.mark.parametrize(("attempt", "ceiling"), list(enumerate(CEILINGS)))
def test_a_growing_wait_spans_half_the_ceiling_to_the_ceiling(attempt, ceiling):
    """The crash wait never comes out shorter than half its ceiling, whatever
    the policy draws, and never longer than the ceiling."""
    low = lowest(backoff_base=0.2, backoff_cap=0.8)
    high = highest(backoff_base=0.2, backoff_cap=0.8)
    assert low.growing(attempt) == pytest.approx(ceiling / 2)
    assert high.growing(attempt) == pytest.approx(ceiling)
    assert all(ceiling / 2 <= POLICY.growing(attempt) <= ceiling for _ in range(200))


def test_a_growing_backoff_waits_from_the_failure_and_is_over_when_the_clock_passes_it():
    clock = Clock()
    backoff = Backoff.growing(highest(backoff_base=0.2, backoff_cap=0.8), clock)
    assert not backoff.waiting()
    delays = [backoff.failed() for _ in CEILINGS]
    assert delays == pytest.approx(list(CEILINGS))
    assert backoff.failures == len(CEILINGS)
    assert backoff.retry_at == pytest.approx(clock.now + 0.8)
    clock.now += 0.79
    assert backoff.waiting()
    clock.now += 0.02
    assert not backoff.waiting()


def test_success_starts_the_next_failure_from_the_bottom():
    clock = Clock()
    backoff = Backoff.growing(highest(backoff_base=0.2, backoff_cap=0.8), clock)
    for _ in range(4):
        backoff.failed()
    backoff.succeeded()
    assert not backoff.waiting() and backoff.failures == 0
    assert backoff.failed() == pytest.approx(0.2)


def test_full_jitter_is_the_policys_own_draw():
    """Backoff.full_jitter waits what RetryPolicy.backoff draws for that attempt."""
    seen: list[int] = []

    class Recording(RetryPolicy):
        def backoff(self, attempt: int) -> float:
            seen.append(attempt)
            return 0.5

    backoff = Backoff.full_jitter(Recording(), Clock())
    assert [backoff.failed() for _ in range(3)] == [0.5, 0.5, 0.5]
    assert seen == [0, 1, 2]
    assert all(0 <= Backoff.full_jitter(POLICY).failed() <= 0.2 for _ in range(200))


def test_thousands_of_failures_in_a_row_stay_at_the_cap():
    """A bug that crashes every pass for days: the doubling stops at the cap
    instead of overflowing a float."""
    backoff = Backoff.growing(POLICY, Clock())
    backoff.failures = 5000
    assert 0.4 <= backoff.failed() <= 0.8
    backoff = Backoff.full_jitter(POLICY, Clock())
    backoff.failures = 5000
    assert 0 <= backoff.failed() <= 0.8
