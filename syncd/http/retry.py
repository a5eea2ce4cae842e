"""The one retry policy: how long to wait before the next attempt.

Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff
And Jitter") and the ``Retry-After`` rule (RFC 9110 §10.2.3): an instant
still ahead pauses the provider until then, capped; one already past (an
HTTP-date before now, ``0``) is a backoff of at least ``backoff_base``, so
"retry now" from a provider that is limiting us never becomes a burst.
Randomness is injectable, so tests are deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from syncd.http import defaults

#: 2**30 times any base is past every cap; doubling further would only
#: overflow a float after a thousand failures in a row
MAX_DOUBLINGS = 30


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """What a ``Retry-After`` instant asks of us."""

    #: pause the provider until then (None: it is past; back off ``delay`` instead)
    until: datetime | None
    #: ``until`` was cut to ``retry_after_cap``
    capped: bool = False
    #: seconds to back off when ``until`` is None
    delay: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    max_attempts: int = defaults.MAX_ATTEMPTS
    #: 429-with-Retry-After waits allowed per request before giving up on the user
    max_rate_limit_waits: int = defaults.MAX_RATE_LIMIT_WAITS
    backoff_base: float = defaults.BACKOFF_BASE
    backoff_cap: float = defaults.BACKOFF_CAP
    retry_after_cap: float = defaults.RETRY_AFTER_CAP
    #: ``uniform(a, b)``; a seeded ``random.Random().uniform`` in tests
    uniform: Callable[[float, float], float] = field(default=random.uniform, compare=False, repr=False)

    def ceiling(self, attempt: int) -> float:
        """The longest wait after the failure numbered ``attempt`` (0 for the
        first): ``min(cap, base * 2**attempt)``."""
        return min(self.backoff_cap, self.backoff_base * 2 ** min(attempt, MAX_DOUBLINGS))

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniformly up to the ceiling (requests: spread a burst)."""
        return self.uniform(0, self.ceiling(attempt))

    def growing(self, attempt: int) -> float:
        """Equal jitter: between half the ceiling and the ceiling (waits that
        must grow for sure: a crashing pass, a lost connection)."""
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + self.uniform(0, ceiling) / 2

    def at_least_base(self, attempt: int) -> float:
        """A backoff never shorter than ``backoff_base`` (a Retry-After already past)."""
        return max(self.backoff(attempt), self.backoff_base)

    def capped(self, retry_at: datetime, now: datetime) -> tuple[datetime, bool]:
        """``retry_at``, no later than ``retry_after_cap`` from now; and whether it was cut."""
        cap = now + timedelta(seconds=self.retry_after_cap)
        return (cap, True) if retry_at > cap else (retry_at, False)

    def retry_after(self, retry_at: datetime | None, now: datetime, attempt: int) -> RetryAfter:
        """The wait a rate-limited answer asks for: a pause until its instant
        (capped) while that is ahead, else a backoff (at least the base when
        the provider named an instant already past)."""
        if retry_at is not None and retry_at > now:
            until, cut = self.capped(retry_at, now)
            return RetryAfter(until, capped=cut)
        delay = self.at_least_base(attempt) if retry_at is not None else self.backoff(attempt)
        return RetryAfter(None, delay=delay)
