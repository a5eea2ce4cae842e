"""The one retry policy, with its randomness fixed: backoff bounds and the
Retry-After rule (a pause ahead, capped; one already past is a backoff)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.http import RetryPolicy

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def highest(a: float, b: float) -> float:
    """A uniform() that always draws the top of its range."""
    return b


def lowest(a: float, b: float) -> float:
    return a


def test_backoff_is_full_jitter_up_to_base_times_two_to_the_attempt_capped() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=30.0, uniform=highest)
    assert [policy.backoff(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert RetryPolicy(uniform=lowest).backoff(3) == 0.0  # full jitter: may retry at once


def test_an_absurd_attempt_number_still_waits_at_most_the_cap() -> None:
    assert RetryPolicy(backoff_cap=7.0, uniform=highest).backoff(10_000) == 7.0


def test_a_retry_after_ahead_pauses_until_that_instant() -> None:
    wait = RetryPolicy().retry_after(NOW + timedelta(seconds=20), NOW, attempt=1)
    assert wait.until == NOW + timedelta(seconds=20) and not wait.capped


def test_a_retry_after_beyond_the_cap_is_cut_to_the_cap() -> None:
    wait = RetryPolicy(retry_after_cap=60).retry_after(NOW + timedelta(days=3), NOW, attempt=1)
    assert wait.until == NOW + timedelta(seconds=60) and wait.capped


def test_a_retry_after_already_past_is_a_backoff_of_at_least_the_base() -> None:
    policy = RetryPolicy(backoff_base=0.5, uniform=lowest)
    wait = policy.retry_after(NOW - timedelta(hours=1), NOW, attempt=1)
    assert wait.until is None and wait.delay == 0.5


def test_no_retry_after_is_a_plain_backoff() -> None:
    policy = RetryPolicy(backoff_base=0.5, uniform=lowest)
    assert policy.retry_after(None, NOW, attempt=2).delay == 0.0
    assert RetryPolicy(backoff_base=0.5, uniform=highest).retry_after(None, NOW, attempt=2).delay == 2.0


def test_the_policy_compares_by_its_settings_not_its_randomness() -> None:
    assert RetryPolicy(uniform=lowest) == RetryPolicy(uniform=highest)
