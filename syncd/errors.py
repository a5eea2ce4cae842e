"""syncd's own small exception hierarchy.

aiohttp, asyncpg and JSON errors are translated into these at the boundary
(``raise ... from``), so the engine and the CLI only ever handle these, and
every one carries what an operator needs to act on it.
"""

from __future__ import annotations

from datetime import datetime


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""


class ConfigError(SyncdError):
    """The configuration is invalid; the message names the key and file."""


class ConfigNotFound(ConfigError):
    """No config file where the operator (or the defaults) pointed; the message
    names every place looked at."""


class UnknownProvider(ConfigError):
    """A command named a provider the config does not have: a usage error
    (the message names the known ones), not an invalid config."""


class StoreUnavailable(SyncdError):
    """PostgreSQL cannot be reached or dropped the connection."""


class WriteRefused(SyncdError):
    """PostgreSQL refused a write for what it carried (a value too large, data
    it can't store): the same write fails again, so its rows must be told apart."""


class ProviderError(SyncdError):
    """A provider answered with something we cannot use for this user.

    ``status`` is the HTTP status (None for transport errors), ``detail`` the
    provider's own message when its error body had one, ``tracking_id`` the
    provider's request id header (Webex ``TrackingID``) when present.

    The message and the detail are scrubbed of secrets (``syncd.redact.
    scrub_text``): a provider may echo the token we sent, or a broken body
    begin with a secret field, and this text is logged, stored in
    ``targets.last_error`` and ``sync_runs.error`` and printed by ``syncd
    status``. ``str(exc)`` is scrubbed again, for a secret registered since.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        detail: str | None = None,
        tracking_id: str | None = None,
    ) -> None:
        super().__init__(_scrubbed(message))
        self.provider = provider
        self.status = status
        self.detail = _scrubbed(detail) if detail else detail
        self.tracking_id = tracking_id

    def __str__(self) -> str:
        parts = [super().__str__()]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.detail:
            parts.append(f"detail={self.detail!r}")
        if self.tracking_id:
            parts.append(f"tracking_id={self.tracking_id}")
        return _scrubbed(" ".join(parts))


def _scrubbed(text: str) -> str:
    # imported here: syncd.redact imports jsonutil, which imports this module
    from syncd.redact import scrub_text

    return scrub_text(text)


class TransientError(ProviderError):
    """Connection error, timeout or 5xx: worth retrying with backoff."""

    retryable = True


class RateLimited(TransientError):
    """429/503/423: the provider asked us to wait (``retry_at``, if it said)."""

    def __init__(self, message: str, *, retry_at: datetime | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_at = retry_at

    #: the ``Retry-After`` header as the provider sent it (for the log)
    retry_after: str | None = None


class NotFound(ProviderError):
    """404: the provider says this user does not exist (now)."""


class UnrecognizedNotFound(ProviderError):
    """A 404 whose body is not the provider's own not-found answer (an HTML
    page from a proxy, a wrong ``base_url`` path): never evidence of a
    deletion; the user is retried and many of these open the circuit."""


class AuthError(ProviderError):
    """401/403, or a token endpoint refused our credentials."""

    #: the Authorization header value that was refused (to renew only that token)
    used_authorization: str | None = None
    #: the credentials themselves are refused (the token endpoint said so, a
    #: static token was refused, a 403, fresh tokens refused again and again):
    #: the pass stops. False for one request refused even after a renewal,
    #: which fails only that user (a flaky provider's 401).
    stops_pass: bool = True


class MalformedResponse(ProviderError):
    """The body is not JSON, has the wrong content type, or lacks the user id."""


class DocumentRefused(MalformedResponse):
    """This user's document can't be stored (too large, nested too deep, not
    encodable, or refused by PostgreSQL): that user's error, never the batch's."""


class CircuitOpen(ProviderError):
    """The provider's circuit breaker is open: no request was sent."""

    retryable = True
