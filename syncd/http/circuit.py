"""The circuit breaker of one provider."""

from __future__ import annotations

import time
from collections.abc import Callable

from syncd.http import defaults


class CircuitBreaker:
    """Closed → (N consecutive failures) → open for a cool-down → one probe.

    ``admit`` hands out tickets: 0 while closed, a probe number while half-open
    (one probe at a time), None when the request must not be sent. A probe
    that ends without an outcome (cancelled, its token could not be fetched)
    is ``abandon``-ed so the next request probes; one that never ends is
    presumed lost after a cool-down."""

    def __init__(
        self,
        threshold: int = defaults.CIRCUIT_FAILURES,
        cooldown: float = defaults.CIRCUIT_COOLDOWN,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self._clock = clock
        self._probe_at: float | None = None
        self._probe_id = 0

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self._clock() - self.opened_at < self.cooldown:
            return "open"
        return "half_open"

    def admit(self) -> int | None:
        state = self.state
        if state == "closed":
            return 0
        now = self._clock()
        if state == "half_open" and (self._probe_at is None or now - self._probe_at >= self.cooldown):
            self._probe_id += 1
            self._probe_at = now
            return self._probe_id
        return None

    def probing(self, ticket: int) -> bool:
        """True while ``ticket`` is the probe in flight, its outcome not recorded."""
        return ticket > 0 and ticket == self._probe_id and self._probe_at is not None

    def abandon(self, ticket: int) -> None:
        if self.probing(ticket):
            self._probe_at = None

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._probe_at = None

    def failure(self) -> bool:
        """Record a failure; True when this one opened the circuit."""
        self.failures += 1
        if self._probe_at is not None or (self.opened_at is None and self.failures >= self.threshold):
            self.opened_at = self._clock()
            self._probe_at = None
            return True
        return False
