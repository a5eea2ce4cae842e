"""Waiting after failures in a row, with the one ``RetryPolicy``.

``Backoff`` counts one thing's failures in a row and says when it may be
tried again; the delay comes from the policy (``RetryPolicy.backoff``, full
jitter, or ``RetryPolicy.growing`` for the waits that must grow for sure)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from syncd.http import RetryPolicy


@dataclass(kw_only=True)
class Backoff:
    """One thing's failures in a row, and how long to leave it alone."""

    #: seconds to wait after the failure numbered ``attempt`` (0 for the first)
    delay: Callable[[int], float]
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    retry_at: float = 0.0

    @classmethod
    def full_jitter(cls, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> Backoff:
        return cls(delay=policy.backoff, clock=clock)

    @classmethod
    def growing(cls, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> Backoff:
        """Each wait at least half as long as its ceiling (``RetryPolicy.growing``)."""
        return cls(delay=policy.growing, clock=clock)

    def failed(self) -> float:
        """One more failure: returns the seconds to wait from now."""
        self.failures += 1
        delay = self.delay(self.failures - 1)
        self.retry_at = self.clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.retry_at = 0, 0.0

    def waiting(self) -> bool:
        """True until the wait after the last failure is over."""
        return self.clock() < self.retry_at
