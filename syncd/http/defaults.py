"""Every default of the HTTP layer, written once.

The classes (``Gate``, ``CircuitBreaker``, ``RetryPolicy``, ``ProviderClient``,
``TokenFlow``) and the config model (``syncd.configbase.ProviderBase``) both
read these, so a test that builds a ``Gate`` runs with what production runs.
"""

from __future__ import annotations

#: requests in flight to one provider (and its connection pool)
CONCURRENCY = 8
#: client-side budget of requests per second (token bucket); None = unlimited
MAX_RPS: float | None = None
#: halve concurrency on 429 and recover slowly (AIMD); off unless configured
ADAPTIVE = False
#: consecutive failures that open the circuit, and how long it stays open
CIRCUIT_FAILURES = 20
CIRCUIT_COOLDOWN = 30.0
#: attempts of one request before its error is the user's
MAX_ATTEMPTS = 5
#: 429-with-Retry-After waits allowed per request before giving up on the user
MAX_RATE_LIMIT_WAITS = 10
#: exponential backoff with full jitter: attempt n waits up to min(cap, base * 2**n)
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
#: the longest a provider's Retry-After may pause it
RETRY_AFTER_CAP = 900.0
#: session timeouts (aiohttp's sock_connect and sock_read)
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
#: a provider answer larger than this (decoded) is refused (a user document is a few KiB)
MAX_BODY = 10 * 1024 * 1024

# -- token flows (not configurable) ---------------------------------------------------
#: renew this many seconds before the token expires
TOKEN_SKEW = 30.0
#: a token without ``expires_in`` is kept this long
TOKEN_LIFETIME = 3600.0
#: after the token endpoint refused our credentials, fail without asking again for this long
TOKEN_REFUSAL_TTL = 30.0
#: after a token request failed (5xx, unreachable), don't ask again for this long:
#: every worker needs a token, and each would otherwise ask at once
TOKEN_FAILURE_TTL = 1.0
#: a token request (connect, send, read) must be done within this many seconds
TOKEN_TIMEOUT = 60.0
#: newly issued tokens refused in a row, with no request accepted in between,
#: before the credentials count as refused (see ``TokenState.invalidate``)
MAX_REFUSED_RENEWALS = 4
