"""The circuit breaker on a hand-moved clock: closed, open, one probe, closed."""

from __future__ import annotations

from syncd.http import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_threshold_failures_in_a_row_and_success_resets_the_count() -> None:
    breaker = CircuitBreaker(3, 30.0, clock=Clock())
    assert not breaker.failure() and not breaker.failure()
    breaker.success()
    assert not breaker.failure() and not breaker.failure()
    assert breaker.failure() and breaker.state == "open"
    assert breaker.admit() is None


def test_after_the_cooldown_one_probe_at_a_time_is_admitted() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 30.0, clock=clock)
    breaker.failure()
    clock.now += 30
    assert breaker.state == "half_open"
    probe = breaker.admit()
    assert probe is not None and probe > 0 and breaker.probing(probe)
    assert breaker.admit() is None  # a second request waits for the probe's outcome


def test_a_probe_that_succeeds_closes_and_one_that_fails_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 30.0, clock=clock)
    breaker.failure()
    clock.now += 30
    breaker.admit()
    assert breaker.failure() and breaker.state == "open"  # the probe failed: a new cool-down
    clock.now += 30
    breaker.admit()
    breaker.success()
    assert breaker.state == "closed" and breaker.admit() == 0


def test_an_abandoned_probe_lets_the_next_request_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 30.0, clock=clock)
    breaker.failure()
    clock.now += 30
    first = breaker.admit()
    assert first is not None
    breaker.abandon(first)
    second = breaker.admit()
    assert second is not None and second != first


def test_a_probe_that_never_ends_is_presumed_lost_after_a_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 30.0, clock=clock)
    breaker.failure()
    clock.now += 30
    assert breaker.admit() is not None
    clock.now += 29
    assert breaker.admit() is None
    clock.now += 1
    assert breaker.admit() is not None
