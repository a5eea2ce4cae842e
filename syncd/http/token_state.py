"""What a token flow knows and decides, as a state machine with no I/O.

Phases::

    EMPTY ──obtained──▶ HELD ──expired / invalidated──▶ EMPTY
      │ ▲
      │ └──────────── obtained ───────────────┐
      ├──endpoint failed (5xx, unreachable)──▶ FAILED   (wait ``failure_ttl``)
      └──credentials refused────────────────▶ REFUSED  (fail fast ``refusal_ttl``)

Across phases it counts *renewals*: a token obtained because the provider
refused the previous one. Such tokens refused too, ``max_refused_renewals``
in a row with no request accepted in between, mean the credentials (or their
grants) are refused, not the token: REFUSED. Time is passed in (monotonic
seconds), so every transition is testable with plain numbers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from syncd.errors import AuthError, ProviderError, RateLimited
from syncd.http import defaults
from syncd.timeutil import utcnow


class Phase(enum.Enum):
    EMPTY = "empty"
    HELD = "held"
    FAILED = "failed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Use:
    """Send this Authorization value."""

    authorization: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait this long (the failure window), then decide again."""

    seconds: float


class Obtain:
    """Ask the token endpoint for a new token."""


OBTAIN = Obtain()
Step = Use | Wait | Obtain


class TokenState:
    def __init__(
        self,
        provider: str,
        *,
        skew: float = defaults.TOKEN_SKEW,
        refusal_ttl: float = defaults.TOKEN_REFUSAL_TTL,
        failure_ttl: float = defaults.TOKEN_FAILURE_TTL,
        max_refused_renewals: int = defaults.MAX_REFUSED_RENEWALS,
    ) -> None:
        self.provider = provider
        self.skew = skew
        self.refusal_ttl = refusal_ttl
        self.failure_ttl = failure_ttl
        self.max_refused_renewals = max_refused_renewals
        self.phase = Phase.EMPTY
        self.token: str | None = None
        self.expires_at = 0.0
        #: the failure (FAILED) or refusal (REFUSED) in force, and since when
        self.error: ProviderError | None = None
        self.since = 0.0
        #: token requests finished so far: tells a waiter whether one failed while it waited
        self.attempts = 0
        #: the next token is obtained because the provider refused the last one
        self.renewing = False
        #: the Authorization value of a token obtained that way, until the provider accepts it
        self.renewal: str | None = None
        #: such tokens refused in a row (reset by any accepted request)
        self.refused_renewals = 0

    # -- reading ----------------------------------------------------------------------------
    def valid(self, now: float) -> str | None:
        """The Authorization value to send, while the token held has not expired."""
        if self.phase is Phase.HELD and self.token is not None and now < self.expires_at:
            return f"Bearer {self.token}"
        return None

    def refusal(self, now: float) -> AuthError | None:
        """The credentials' refusal in force (every request fails with it), if any."""
        if self.phase is Phase.REFUSED and now - self.since < self.refusal_ttl:
            assert isinstance(self.error, AuthError)
            return self.error
        return None

    def next_step(self, now: float, seen: int) -> Step:
        """What a request that needs a token does now. ``seen`` is ``attempts``
        when it started waiting for its turn: a failure since then is raised to
        it rather than asked again. Raises the refusal or failure in force."""
        authorization = self.valid(now)
        if authorization is not None:
            return Use(authorization)
        refused = self.refusal(now)
        if refused is not None:
            # the endpoint just refused our credentials: fail fast, don't storm it
            raise refused
        if self.phase is Phase.FAILED and self.error is not None:
            if seen != self.attempts or _pause_pending(self.error):
                # it failed while we waited, or asked us to wait (the gate holds
                # us then): retry after the backoff or the pause
                raise self.error
            # a retry right after a failure: wait out its window (the caller holds
            # the lock, so the workers queued behind share one request)
            wait = self.since + self.failure_ttl - now
            if wait > 0:
                return Wait(wait)
        return OBTAIN

    # -- the token endpoint's answers -------------------------------------------------------------
    def obtained(self, token: str, expires_in: float | None, now: float) -> None:
        self.attempts += 1
        ttl = float(expires_in) if expires_in else defaults.TOKEN_LIFETIME
        self.phase, self.token, self.error = Phase.HELD, token, None
        self.expires_at = now + max(ttl - min(self.skew, ttl / 10), 1.0)
        self.renewal = f"Bearer {token}" if self.renewing else None
        self.renewing = False

    def refused(self, error: AuthError, now: float) -> None:
        self.attempts += 1
        self._refuse(error, now)

    def failed(self, error: ProviderError, now: float) -> None:
        self.attempts += 1
        self.phase, self.token, self.error, self.since = Phase.FAILED, None, error, now

    def _refuse(self, error: AuthError, now: float) -> None:
        self.phase, self.token, self.error, self.since = Phase.REFUSED, None, error, now

    # -- the provider's answers -------------------------------------------------------------------
    def invalidate(self, used: str | None, error: AuthError | None, now: float) -> bool:
        """The provider refused ``used`` (an Authorization value; None: whatever
        we hold) with ``error``: forget that token (only that one, so concurrent
        401s renew once). False when a new token cannot help: the credentials
        count as refused."""
        if used is not None and used == self.renewal:
            # a token issued because the last one was refused is refused too. Once
            # may be a flaky provider (Fortanix answers a random 401 now and then):
            # renew again. Again and again with nothing accepted in between, the
            # credentials (or their grants) are the problem, not the token: renewing
            # on every request would only storm the token endpoint.
            self.renewal = None  # counted once, however many requests carried it
            self.refused_renewals += 1
            if self.refused_renewals >= self.max_refused_renewals:
                self.renewing = True
                self._refuse(self._credentials_refused(error), now)
                return False
        if used is None or (self.token is not None and used == f"Bearer {self.token}"):
            if self.phase is Phase.HELD:
                self.phase, self.token = Phase.EMPTY, None
            self.renewing = True
        return True

    def accepted(self, used: str | None) -> None:
        """The provider answered a request made with ``used`` (it is valid)."""
        if used is not None and used == self.renewal:
            self.renewal = None
        self.refused_renewals = 0

    def _credentials_refused(self, error: AuthError | None) -> AuthError:
        return AuthError(
            f"credentials rejected ({self.refused_renewals} newly issued tokens in a row were refused too)",
            provider=self.provider,
            status=error.status if error else 401,
            detail=error.detail if error else None,
            tracking_id=error.tracking_id if error else None,
        )


def _pause_pending(exc: ProviderError) -> bool:
    """A token endpoint's Retry-After that has not passed yet."""
    retry_at = exc.retry_at if isinstance(exc, RateLimited) else None
    return retry_at is not None and utcnow() < retry_at
