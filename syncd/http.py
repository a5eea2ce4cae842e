"""The one HTTP layer every provider goes through.

It owns what must be the same for every provider: one keep-alive
``ClientSession`` per provider sized to its concurrency, timeouts, bearer
tokens (renewed once on 401), ``Retry-After`` (RFC 9110 §10.2.3) pausing
the *whole* provider, exponential backoff with full jitter, a client-side
rate budget, adaptive concurrency (AIMD) and a circuit breaker. aiohttp and
JSON errors are translated here into ``syncd.errors``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import contextvars
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp
import structlog
from yarl import URL

from syncd import jsonutil, metrics
from syncd.errors import (
    AuthError,
    BodyUnchanged,
    CircuitOpen,
    MalformedResponse,
    NotFound,
    ProviderError,
    RateLimited,
    TransientError,
    UnrecognizedNotFound,
)
from syncd.logs import register_secret
from syncd.redact import may_hold_secrets, secret_markers, strip_secrets
from syncd.timeutil import parse_retry_after, utcnow

log = structlog.get_logger("syncd.http")

#: statuses whose ``Retry-After`` pauses the provider (RFC 6585 §4, RFC 9110 §15.6.4, RFC 4918 §11.3)
RATE_LIMIT_STATUSES = frozenset({429, 503, 423})
#: a provider answer larger than this is refused (a user document is a few KiB)
MAX_BODY = 10 * 1024 * 1024
#: redirects (RFC 9110 §15.4) we may follow, and only within the request's origin
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: same-origin redirects followed for one GET before it is a provider error
MAX_REDIRECTS = 3
#: what is read of a redirect's body (to keep the connection alive), at most
REDIRECT_BODY = 64 * 1024


async def read_body(resp: aiohttp.ClientResponse, limit: int, *, provider: str, strict: bool = True) -> bytes:
    """At most ``limit`` bytes of the *decoded* body: over it, ``MalformedResponse``
    when ``strict``, else the body cut at ``limit`` (an error page only feeds a detail).

    aiohttp inflates gzip, deflate and br bodies as they arrive, and
    Content-Length counts the compressed bytes (1 MB of gzip may hold 1 GiB),
    so an encoded body is read chunk by chunk and counted as inflated."""
    declared = resp.content_length
    if declared is not None and declared <= limit and _identity_encoded(resp):
        return await resp.read()  # the parser stops at Content-Length
    if strict and declared is not None and declared > limit:
        raise MalformedResponse(
            f"body too large: Content-Length {declared} > {limit} bytes",
            provider=provider,
            status=resp.status,
        )
    buf = bytearray()
    async for chunk in resp.content.iter_any():
        buf += chunk
        if len(buf) > limit:
            if strict:
                raise MalformedResponse(
                    f"body too large: more than {limit} bytes", provider=provider, status=resp.status
                )
            return bytes(buf[:limit])
    return bytes(buf)


def _identity_encoded(resp: aiohttp.ClientResponse) -> bool:
    encoding = resp.headers.get("Content-Encoding", "").strip().lower()
    return encoding in ("", "identity")


def same_origin_redirect(resp: aiohttp.ClientResponse) -> URL | None:
    """Where a redirect points, resolved against the URL that answered it, if it
    stays within that URL's origin (scheme, host, port; RFC 6454 §4); else None."""
    location = resp.headers.get("Location")
    if not location:
        return None
    try:
        target = resp.url.join(URL(location))
    except ValueError:
        return None
    return target if _origin(target) == _origin(resp.url) else None


def _origin(url: URL) -> tuple[str, str, int | None]:
    return url.scheme.lower(), (url.host or "").lower(), url.port


def _leaves_origin(url: str, location: str) -> bool:
    try:
        return _origin(URL(url).join(URL(location))) != _origin(URL(url))
    except ValueError:  # not even a URL: nowhere we would go
        return True


@dataclass(slots=True)
class BodyCheck:
    """Set (via ``BODY_CHECK``) around one adapter ``fetch``: the first 2xx body
    is fingerprinted, and if it equals ``expected`` the fetch ends with
    ``BodyUnchanged`` before any parsing (a client-side If-None-Match)."""

    salt: bytes
    expected: str | None
    observed: str | None = None
    used: bool = False

    def fingerprint(self, body: bytes) -> str:
        return hashlib.sha256(self.salt + body).hexdigest()


BODY_CHECK: contextvars.ContextVar[BodyCheck | None] = contextvars.ContextVar(
    "syncd_body_check", default=None
)
ErrorDetail = Callable[[bytes], "str | None"]
#: ``(response headers, body)`` of a 404 → is it the provider's own not-found answer?
NotFoundCheck = Callable[[Mapping[str, str], bytes], bool]


class Auth(Protocol):
    """Supplies the ``Authorization`` header; token flows can be renewed."""

    renewable: bool

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]: ...

    def invalidate(self, used: str | None = None, error: AuthError | None = None) -> bool:
        """The provider refused ``used`` (an Authorization value) with ``error``:
        forget that token (only that one, so concurrent 401s renew once).
        False when a new token cannot help (the credentials are refused)."""
        ...

    def accepted(self, used: str | None) -> None:
        """The provider answered a request made with ``used`` (it is valid)."""

    def refusal(self) -> AuthError | None:
        """The credentials' refusal in force (every request fails with it), if any."""
        ...


class BearerToken:
    renewable = False

    def __init__(self, token: str) -> None:
        self._header = {"Authorization": f"Bearer {token}"}

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        return self._header

    def invalidate(self, used: str | None = None, error: AuthError | None = None) -> bool:
        return False

    def accepted(self, used: str | None) -> None:
        pass

    def refusal(self) -> AuthError | None:
        return None

    def __repr__(self) -> str:  # never show the token
        return "BearerToken(***)"


class TokenFlow:
    """A cached bearer token from a token endpoint, renewed before ``expires_in``
    runs out and on demand after a 401. Subclasses implement ``obtain``."""

    renewable = True
    #: renew this many seconds before the token expires
    skew = 30.0
    #: after the token endpoint refused our credentials, fail without asking again for this long
    refusal_ttl = 30.0
    #: after a token request failed (5xx, unreachable), don't ask again for this long:
    #: every worker needs a token, and each would otherwise ask at once
    failure_ttl = 1.0
    #: a token request (connect, send, read) must be done within this many seconds
    timeout = 60.0
    #: tokens issued because the last one was refused, refused too, in a row with
    #: no request accepted in between, before the credentials count as refused.
    #: One is a flaky provider (5 % random 401s: a false refusal per fresh token
    #: is 0.05**N likely); every request refused is bad credentials, and this
    #: bounds the token requests that cost to N + 1 per ``refusal_ttl``.
    max_refused_renewals = 4

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._refused: tuple[float, AuthError] | None = None
        #: the last token request's failure other than a refusal (cleared by a success)
        self._failure: ProviderError | None = None
        self._failed_at = 0.0
        #: token requests finished so far: tells a waiter whether one failed while it waited
        self._fetches = 0
        #: the next token is obtained because the provider refused the last one
        self._renewing = False
        #: the Authorization value of a token obtained that way, until the provider accepts it
        self._renewal: str | None = None
        #: such tokens refused in a row (reset by any accepted request)
        self._refused_renewals = 0

    async def obtain(self, session: aiohttp.ClientSession) -> tuple[str, float | None]:
        """Return ``(access_token, expires_in_seconds)``."""
        raise NotImplementedError

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._expires_at:
            seen = self._fetches
            async with self._lock:
                if self._refused is not None and time.monotonic() - self._refused[0] < self.refusal_ttl:
                    # the endpoint just refused our credentials: fail fast, don't storm it
                    raise self._refused[1]
                failure = self._failure
                if failure is not None:
                    if seen != self._fetches or _pause_pending(failure):
                        # it failed while we waited for the lock, or asked us to wait
                        # (the gate holds us then): retry after the backoff or the pause
                        raise failure
                    # a retry right after a failure: wait out its window (holding the
                    # lock, so the workers queued behind share this one request)
                    wait = self._failed_at + self.failure_ttl - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                if self._token is None or time.monotonic() >= self._expires_at:
                    try:
                        token, expires_in = await self.obtain(session)
                    except AuthError as exc:
                        self._refused = (time.monotonic(), exc)
                        raise
                    except ProviderError as exc:
                        self._failure, self._failed_at = exc, time.monotonic()
                        raise
                    finally:
                        self._fetches += 1
                    self._refused = self._failure = None
                    ttl = float(expires_in) if expires_in else 3600.0
                    self._token = token
                    self._renewal = f"Bearer {token}" if self._renewing else None
                    self._renewing = False
                    register_secret(token)
                    self._expires_at = time.monotonic() + max(ttl - min(self.skew, ttl / 10), 1.0)
                    log.info("auth.token_obtained", provider=self.provider, expires_in=expires_in)
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self, used: str | None = None, error: AuthError | None = None) -> bool:
        if used is not None and used == self._renewal:
            # a token issued because the last one was refused is refused too. Once
            # may be a flaky provider (Fortanix answers a random 401 now and then):
            # renew again. Again and again with nothing accepted in between, the
            # credentials (or their grants) are the problem, not the token: renewing
            # on every request would only storm the token endpoint.
            self._renewal = None  # counted once, however many requests carried it
            self._refused_renewals += 1
            if self._refused_renewals >= self.max_refused_renewals:
                self._token = None
                self._renewing = True
                refusal = AuthError(
                    f"credentials rejected ({self._refused_renewals} newly issued tokens "
                    "in a row were refused too)",
                    provider=self.provider,
                    status=error.status if error else 401,
                    detail=error.detail if error else None,
                    tracking_id=error.tracking_id if error else None,
                )
                self._refused = (time.monotonic(), refusal)
                log.warning(
                    "auth.renewed_token_refused", provider=self.provider, refused=self._refused_renewals
                )
                return False
            log.info(
                "auth.renewed_token_refused_once", provider=self.provider, refused=self._refused_renewals
            )
        if used is None or used == f"Bearer {self._token}":
            self._token = None
            self._renewing = True
        return True

    def accepted(self, used: str | None) -> None:
        if used is not None and used == self._renewal:
            self._renewal = None
        self._refused_renewals = 0

    def refusal(self) -> AuthError | None:
        refused = self._refused
        if refused is not None and time.monotonic() - refused[0] < self.refusal_ttl:
            return refused[1]
        return None

    async def post_token(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        basic: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST to a token endpoint; a refusal is an ``AuthError`` naming the provider.
        ``basic`` is ``(user, password)`` for HTTP Basic (RFC 7617)."""
        headers = dict(headers or {})
        if basic is not None:
            headers["Authorization"] = basic_auth(*basic)
        status, body = await self.post_checked(session, url, data=data, json=json, headers=headers)
        doc = jsonutil.parse_body(body, provider=self.provider, status=status)
        if not isinstance(doc, dict) or not doc.get("access_token"):
            raise MalformedResponse("token endpoint answered without access_token", provider=self.provider)
        return doc

    async def post_checked(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        what: str = "token endpoint",
        data: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """POST one step of the auth flow; ``(status, body)`` of a 2xx answer.

        400/401/403 are an ``AuthError`` (the credentials), 429/503/423 a
        ``RateLimited`` carrying the ``Retry-After`` instant (the HTTP layer
        pauses the provider on it), other 5xx and transport errors a
        ``TransientError``, a redirect a ``ProviderError``: it is never
        followed, not even within the origin. A 307/308 would send the
        credentials in the body again, to wherever the Location says, and a
        301/302/303 turns the POST into a GET that cannot yield a token; the
        token URL is configuration, and a redirect means it is wrong."""
        try:
            async with asyncio.timeout(self.timeout):
                async with session.post(
                    url, data=data, json=json, headers=headers, allow_redirects=False
                ) as resp:
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    location = resp.headers.get("Location")
                    body = await read_body(resp, MAX_BODY, provider=self.provider, strict=status < 300)
        except (aiohttp.ClientError, TimeoutError) as exc:
            kind = "timeout" if isinstance(exc, TimeoutError) else exc.__class__.__name__
            raise TransientError(f"{what} unreachable: {kind}", provider=self.provider) from exc
        if 300 <= status < 400:
            raise ProviderError(
                # no "key: value" look: error text is scrubbed of secret-looking fields
                f"{what} {url} redirected ({status}) to {location}, not followed; configure the final URL",
                provider=self.provider,
                status=status,
            )
        if status < 300:
            return status, body
        detail = body[:200].decode("utf-8", "replace").strip() or None
        if status in RATE_LIMIT_STATUSES or (retry_after and status >= 500):
            limited = RateLimited(
                f"{what} asked us to slow down ({status})",
                retry_at=parse_retry_after(retry_after),
                provider=self.provider,
                status=status,
                detail=detail,
            )
            limited.retry_after = retry_after
            raise limited
        if status in (400, 401, 403):
            message = (
                "credentials refused by the token endpoint" if what == "token endpoint" else f"{what} refused"
            )
            raise AuthError(message, provider=self.provider, status=status, detail=detail)
        cls = TransientError if status >= 500 else ProviderError
        raise cls(f"{what} failed", provider=self.provider, status=status, detail=detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


def _pause_pending(exc: ProviderError) -> bool:
    """A token endpoint's Retry-After that has not passed yet."""
    retry_at = exc.retry_at if isinstance(exc, RateLimited) else None
    return retry_at is not None and utcnow() < retry_at


def basic_auth(user: str, password: str) -> str:
    """An RFC 7617 ``Authorization: Basic`` value (UTF-8 credentials)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class CircuitBreaker:
    """Closed → (N consecutive failures) → open for a cool-down → one probe.

    ``admit`` hands out tickets: 0 while closed, a probe number while half-open
    (one probe at a time), None when the request must not be sent. A probe
    that ends without an outcome (cancelled, its token could not be fetched)
    is ``abandon``-ed so the next request probes; one that never ends is
    presumed lost after a cool-down."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self._probe_at: float | None = None
        self._probe_id = 0

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if time.monotonic() - self.opened_at < self.cooldown:
            return "open"
        return "half_open"

    def admit(self) -> int | None:
        state = self.state
        if state == "closed":
            return 0
        now = time.monotonic()
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
            self.opened_at = time.monotonic()
            self._probe_at = None
            return True
        return False


class Gate:
    """Everything that decides *when* a request to one provider may be sent,
    shared by all workers of this process: the provider-wide pause (from
    ``Retry-After``, possibly set by another replica), the rate budget, the
    adaptive concurrency limit and the circuit breaker."""

    def __init__(
        self,
        provider: str,
        *,
        concurrency: int,
        max_rps: float | None = None,
        adaptive: bool = True,
        circuit_failures: int = 20,
        circuit_cooldown: float = 30.0,
    ) -> None:
        self.provider = provider
        self.max_concurrency = concurrency
        self.limit = float(concurrency)
        self.adaptive = adaptive
        self.in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.paused_until: datetime | None = None
        self._pause_changed = asyncio.Event()
        self.max_rps = max_rps
        self._tokens = max_rps or 0.0
        self._bucket_at = time.monotonic()
        self._bucket_lock = asyncio.Lock()
        self.circuit = CircuitBreaker(circuit_failures, circuit_cooldown)
        #: called with the new pause instant so it can be shared (engine → store)
        self.on_pause: Callable[[datetime, str], Awaitable[None]] | None = None

    async def acquire(self) -> int:
        """Wait for a slot, the end of any pause and a rate token; returns the
        circuit ticket (``CircuitBreaker.admit``), > 0 for the half-open probe."""
        if self.in_flight < max(1, int(self.limit)) and not self._waiters:
            self.in_flight += 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # release() hands us its slot (in_flight already counted)
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release_slot()
                raise
        ticket: int | None = None
        try:
            while True:
                await self.wait_pause()
                if not ticket:  # (re)check the circuit; a probe keeps its turn
                    ticket = self.circuit.admit()
                    if ticket is None:
                        raise CircuitOpen(
                            "circuit open: provider failing, not sending", provider=self.provider
                        )
                await self._take_token()
                # a 429 may have announced a pause while we slept for a rate token
                if not self.paused():
                    return ticket
        except BaseException:
            if ticket:
                self.circuit.abandon(ticket)
            self._release_slot()
            raise

    async def wait_turn(self) -> None:
        """Wait out the pause and take a rate token, until no pause is in force."""
        while True:
            await self.wait_pause()
            await self._take_token()
            if not self.paused():
                return

    async def release(self) -> None:
        self._release_slot()

    def _release_slot(self) -> None:
        """A FIFO hand-over of slots: O(1) per request, no thundering herd."""
        self.in_flight -= 1
        while self._waiters and self.in_flight < max(1, int(self.limit)):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def paused(self) -> bool:
        return self.paused_until is not None and self.paused_until > utcnow()

    async def wait_pause(self) -> None:
        while self.paused_until is not None:
            delay = (self.paused_until - utcnow()).total_seconds()
            if delay <= 0:
                break
            changed = self._pause_changed
            with contextlib.suppress(TimeoutError):
                # woken early when the pause is shortened or cleared (set_pause)
                await asyncio.wait_for(changed.wait(), delay)

    def set_pause(self, until: datetime | None) -> None:
        """The pause as provider_state records it (shared by every replica, and
        cleared there by `syncd pause clear`): it may shorten or end ours."""
        if until == self.paused_until:
            return
        self.paused_until = until
        self._pause_changed.set()
        self._pause_changed = asyncio.Event()

    def apply_pause(self, until: datetime) -> bool:
        """Adopt a pause (ours or another replica's); True if it extended ours."""
        if self.paused_until is None or until > self.paused_until:
            self.paused_until = until
            return True
        return False

    async def pause(self, until: datetime, reason: str) -> bool:
        """Pause every request until ``until``; True if that extended the pause."""
        if not self.apply_pause(until):
            return False
        if self.on_pause is not None:
            await self.on_pause(until, reason)
        return True

    async def _take_token(self) -> None:
        if not self.max_rps:
            return
        async with self._bucket_lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.max_rps, self._tokens + (now - self._bucket_at) * self.max_rps)
                self._bucket_at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.max_rps)

    def rate_limited(self) -> None:
        """Multiplicative decrease of concurrency (AIMD) on a 429."""
        if self.adaptive:
            self.limit = max(1.0, self.limit / 2)

    def succeeded(self) -> None:
        self.circuit.success()
        if self.adaptive and self.limit < self.max_concurrency:
            self.limit = min(float(self.max_concurrency), self.limit + 1 / self.limit)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    #: 429-with-Retry-After waits allowed per request before giving up on the user
    max_rate_limit_waits: int = 10
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_cap: float = 900.0

    def backoff(self, attempt: int) -> float:
        """Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter")."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))


def _json_content_type(content_type: str) -> bool:
    ct = content_type.split(";", 1)[0].strip().lower()
    return ct == "" or ct == "application/json" or ct.endswith("+json")


class ProviderClient:
    """Makes requests to one provider on behalf of its adapter."""

    def __init__(
        self,
        provider: str,
        session: aiohttp.ClientSession,
        gate: Gate,
        auth: Auth | None = None,
        *,
        policy: RetryPolicy | None = None,
        error_detail: ErrorDetail | None = None,
        tracking_header: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        redact_fields: Sequence[str] = (),
        max_body: int = MAX_BODY,
        request_timeout: float | None = None,
        not_found: NotFoundCheck | None = None,
    ) -> None:
        self.provider = provider
        self.session = session
        self.gate = gate
        self.auth = auth
        self.policy = policy or RetryPolicy()
        self.error_detail = error_detail or (lambda body: None)
        self.tracking_header = tracking_header
        self.default_headers = dict(default_headers or {})
        self.redact_fields = tuple(redact_fields)
        #: tells the provider's own "no such user" 404 (headers, body) from any
        #: other (a proxy's HTML page, a wrong base_url path): only the former is
        #: a ``NotFound``, which may lead to a deletion. None: every 404 is.
        self.not_found = not_found
        #: a larger answer is a ``MalformedResponse`` (checked before and while reading)
        self.max_body = max_body
        #: the whole request (connect, send, every chunk of the body) must fit in
        #: this; the session's sock_read restarts with each chunk, so a server that
        #: trickles its answer would otherwise hold a worker forever
        self.request_timeout = request_timeout if request_timeout is not None else _default_deadline(session)
        # requests in flight and their deadlines, enforced by one sweeper task:
        # asyncio.timeout per request cost ~6 µs (a timer each), 7 % of a fetch
        self._deadlines: dict[asyncio.Task[Any], tuple[float, int]] = {}
        self._timed_out: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # metric children resolved once: labels() takes a lock on every call
        self._fetch_seconds = metrics.FETCH_SECONDS.labels(provider)
        self._circuit_open = metrics.CIRCUIT_OPEN.labels(provider)
        self._circuit_open.set(0)
        self.secret_markers = secret_markers(self.redact_fields)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def get_json(self, url: str | URL, *, params: Mapping[str, str] | None = None) -> Any:
        """GET a JSON document, with every retry rule applied (see request_json)."""
        return await self.request_json("GET", url, params=params)

    async def post_json(self, url: str | URL, *, json: Any, params: Mapping[str, str] | None = None) -> Any:
        """POST a JSON query (a search: ZITADEL's ``POST /v2/users``) and read
        the JSON answer, with every retry rule applied; it must change nothing
        on the provider, since it may be sent again (see request_json)."""
        return await self.request_json("POST", url, params=params, json=json)

    async def request_json(
        self, method: str, url: str | URL, *, params: Mapping[str, str] | None = None, json: Any = None
    ) -> Any:
        """Make a read request and return its JSON document, with every retry rule applied.

        Raises ``NotFound`` (the provider's own 404), ``UnrecognizedNotFound``
        (any other 404), ``AuthError`` (401/403 after one renewal),
        ``MalformedResponse``, ``RateLimited``/``TransientError`` once retries
        are exhausted, or ``ProviderError`` for other 4xx and redirects that
        leave the origin.
        """
        attempt = 0
        rate_waits = 0
        renewed = False
        while True:
            try:
                return await self._once(method, url, params, json)
            except RateLimited as exc:
                rate_waits += 1
                self.gate.rate_limited()
                metrics.RATE_LIMITED.labels(self.provider).inc()
                if rate_waits > self.policy.max_rate_limit_waits:
                    raise
                if exc.retry_at is not None and exc.retry_at > utcnow():
                    continue  # the gate holds every request until retry_at
                # no Retry-After, or one already past (an HTTP-date before now, "0"):
                # we back off ourselves; "retry now" from a provider that is limiting
                # us must never become a burst of immediate retries
                passed = exc.retry_at is not None
                attempt += 1
                if attempt >= self.policy.max_attempts:
                    raise
                delay = self.policy.backoff(attempt)
                if passed:
                    delay = max(delay, self.policy.backoff_base)
                if exc.status == 429:
                    # a 429 without Retry-After (ZITADEL doesn't promise one) still
                    # means "too fast": every worker of this process backs off
                    self.gate.apply_pause(utcnow() + timedelta(seconds=delay))
                    log.warning(
                        "provider.rate_limited",
                        provider=self.provider,
                        status=429,
                        retry_after=exc.retry_after,
                        backoff=round(delay, 3),
                    )
                else:
                    await self._backoff(exc, attempt, delay)
            except AuthError as exc:
                used = exc.used_authorization
                # no request was refused (the token endpoint was), the token is valid
                # but lacks a right (403), or it cannot be renewed: a new token won't help
                if used is None or exc.status == 403 or self.auth is None or not self.auth.renewable:
                    raise
                if not self.auth.invalidate(used, exc):
                    raise  # the credentials are refused (stops_pass)
                if renewed:
                    # refused again after a renewal: a flaky provider's 401 costs this
                    # user (retried next pass), not the pass; the token flow counts
                    # refused fresh tokens and declares the credentials refused
                    exc.stops_pass = False
                    log.warning(
                        "auth.refused_after_renewal", provider=self.provider, url=url, status=exc.status
                    )
                    raise
                renewed = True
                log.info("auth.renewing", provider=self.provider)
            except TransientError as exc:
                if isinstance(exc, CircuitOpen):
                    raise
                attempt += 1
                if attempt >= self.policy.max_attempts:
                    raise
                await self._backoff(exc, attempt)

    async def _backoff(self, exc: ProviderError, attempt: int, delay: float | None = None) -> None:
        if delay is None:
            delay = self.policy.backoff(attempt)
        log.warning(
            "provider.retrying",
            provider=self.provider,
            error=str(exc),
            status=exc.status,
            attempt=attempt,
            delay=round(delay, 3),
        )
        await self.sleep(delay)

    async def _once(self, method: str, url: str | URL, params: Mapping[str, str] | None, json: Any) -> Any:
        headers = dict(self.default_headers)
        ticket = await self.gate.acquire()
        answered = False
        try:
            started = time.monotonic()
            try:
                # after the gate: a request that waited out a pause or a renewal uses the newest token
                if self.auth is not None:
                    headers.update(await self._auth_headers())
                while self.gate.paused():
                    # announced while we waited for the token: its instant binds us too
                    await self.gate.wait_turn()
                    if self.auth is not None:
                        headers.update(await self._auth_headers())
                status, resp_headers, body, answered_url = await self._send(
                    method, url, params, json, headers
                )
                answered = True
            except MalformedResponse:
                answered = True  # an answer all the same (a body too large)
                raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._failed()
                kind = "timeout" if isinstance(exc, TimeoutError) else exc.__class__.__name__
                raise TransientError(f"request failed: {kind}", provider=self.provider) from exc
            finally:
                await self.gate.release()
                self._fetch_seconds.observe(time.monotonic() - started)
            used = headers.get("Authorization")
            try:
                return await self._interpret(answered_url, status, resp_headers, body, used)
            except AuthError as exc:
                exc.used_authorization = used
                raise
        finally:
            if ticket and self.gate.circuit.probing(ticket):
                if answered:
                    # any answer (a 429, a 503 with Retry-After, a body too large)
                    # proves the provider alive; failures were recorded already
                    self._circuit_closed()
                else:  # cancelled, or the token could not be had: let another request probe
                    self.gate.circuit.abandon(ticket)

    async def _send(
        self,
        method: str,
        url: str | URL,
        params: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str],
    ) -> tuple[int, Mapping[str, str], bytes, str]:
        """One request under the request deadline: ``(status, headers, body, url
        that answered)``; the deadline's cancellation comes out as ``TimeoutError``.

        Redirects are ours to follow (aiohttp would follow them anywhere and
        hand us another host's answer to mirror): within the origin, a few
        hops, since the origin is the authority we already send the token to
        and a reverse proxy that canonicalises a path (a trailing slash) is
        harmless; the answer still has to be the user asked for. A redirect
        to another origin, or one too many, is returned as it is, and
        ``_interpret`` makes it a provider error. A POST follows none: its
        body would be dropped or sent on."""
        task = self._watch()
        try:
            target: str | URL = url
            hop = 0
            while True:
                async with self.session.request(
                    method,
                    target,
                    params=params if hop == 0 else None,
                    json=json,
                    headers=headers,
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    if status in REDIRECT_STATUSES and hop < MAX_REDIRECTS and method == "GET":
                        following = same_origin_redirect(resp)
                        if following is not None:
                            await read_body(resp, REDIRECT_BODY, provider=self.provider, strict=False)
                            target, hop = following, hop + 1
                            continue
                    body = await read_body(resp, self.max_body, provider=self.provider, strict=status < 300)
                    return status, resp.headers, body, str(resp.url)
        except asyncio.CancelledError:
            if not self._expired(task):
                raise
            raise TimeoutError from None
        finally:
            if task is not None:
                self._deadlines.pop(task, None)
                self._timed_out.discard(task)

    def _watch(self) -> asyncio.Task[Any] | None:
        """Put the current task under the request deadline (see _sweep)."""
        task = asyncio.current_task()
        if task is None:
            return None
        self._deadlines[task] = (time.monotonic() + self.request_timeout, task.cancelling())
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep(), name=f"deadlines:{self.provider}"
            )
        return task

    def _expired(self, task: asyncio.Task[Any] | None) -> bool:
        """Was this cancellation our deadline's (and only ours)? Then it is
        taken back, and the request failed with a timeout."""
        if task is None or task not in self._timed_out:
            return False
        self._timed_out.discard(task)
        _, cancelling = self._deadlines.get(task, (0.0, 0))
        return task.uncancel() <= cancelling  # more left: someone else cancelled too

    async def _sweep(self) -> None:
        """One timer for every request in flight: cancel those past the deadline."""
        while self._deadlines:
            await asyncio.sleep(min(1.0, self.request_timeout / 4))
            now = time.monotonic()
            for task, (deadline, _) in list(self._deadlines.items()):
                if deadline <= now and task not in self._timed_out:
                    self._timed_out.add(task)
                    task.cancel()

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None

    async def _auth_headers(self) -> dict[str, str]:
        assert self.auth is not None
        try:
            return await self.auth.headers(self.session)
        except RateLimited as exc:
            # the token endpoint's Retry-After pauses the provider like a GET's
            # (one already past is a backoff: see get_json)
            if exc.retry_at is not None and exc.retry_at > utcnow():
                # waiters re-raise the same error: log only the pause it started
                await self._pause(exc, exc.retry_after, always_log=False)
            raise

    async def _pause(self, exc: RateLimited, retry_after: str | None, *, always_log: bool = True) -> None:
        """Pause the whole provider until ``exc.retry_at`` (capped)."""
        assert exc.retry_at is not None
        cap = utcnow() + timedelta(seconds=self.policy.retry_after_cap)
        if exc.retry_at > cap:
            log.warning(
                "provider.retry_after_capped",
                provider=self.provider,
                retry_after=retry_after,
                cap_seconds=self.policy.retry_after_cap,
            )
            # the capped instant, also for whoever holds this error (a token flow's cache)
            exc.retry_at = cap
        if await self.gate.pause(exc.retry_at, f"HTTP {exc.status}") or always_log:
            log.warning(
                "provider.rate_limited",
                provider=self.provider,
                status=exc.status,
                retry_at=exc.retry_at.isoformat(),
                tracking_id=exc.tracking_id,
            )

    def _circuit_closed(self) -> None:
        if self.gate.circuit.opened_at is not None:
            self._circuit_open.set(0)
        self.gate.circuit.success()

    def _failed(self) -> None:
        if self.gate.circuit.failure():
            self._circuit_open.set(1)
            log.error(
                "provider.circuit_open",
                provider=self.provider,
                failures=self.gate.circuit.failures,
                cooldown=self.gate.circuit.cooldown,
            )

    async def _interpret(
        self, url: str, status: int, headers: Mapping[str, str], body: bytes, used: str | None
    ) -> Any:
        tracking = headers.get(self.tracking_header) if self.tracking_header else None
        common: dict[str, Any] = {"provider": self.provider, "status": status, "tracking_id": tracking}
        if 200 <= status < 300:
            if self.auth is not None:
                self.auth.accepted(used)
            if self.gate.circuit.opened_at is not None:
                self._circuit_open.set(0)
            self.gate.succeeded()
            content_type = headers.get("Content-Type", "")
            if not _json_content_type(content_type):
                raise MalformedResponse(
                    f"expected JSON, got content type {content_type!r}",
                    **common,
                    detail=body[:120].decode("utf-8", "replace"),
                )
            check = BODY_CHECK.get()
            if check is not None and not check.used:
                check.used = True
                check.observed = check.fingerprint(body)
                if check.observed == check.expected:
                    raise BodyUnchanged
            doc = jsonutil.parse_body(body, provider=self.provider, status=status)
            # credential material never leaves the HTTP layer (Wacht puts TOTP
            # secrets and OAuth tokens in the user document)
            if may_hold_secrets(body, doc, self.secret_markers):
                doc = strip_secrets(doc, self.redact_fields)
            return doc
        detail = self._detail(body)
        retry_after = headers.get("Retry-After")
        if status in RATE_LIMIT_STATUSES or (retry_after and status >= 500):
            exc = RateLimited(
                f"provider asked us to slow down ({status})",
                retry_at=parse_retry_after(retry_after),
                **common,
                detail=detail,
            )
            exc.retry_after = retry_after
            if exc.retry_at is not None:
                if exc.retry_at > utcnow():  # one already past is a backoff (get_json)
                    await self._pause(exc, retry_after)
            elif status >= 500:
                self._failed()
            raise exc
        if status == 404:
            if self.not_found is not None and not self._recognized_404(headers, body):
                # not the provider's own answer: never a step toward a deletion, and
                # a wrong path or a proxy in the way is the provider failing for us
                self._failed()
                raise UnrecognizedNotFound(
                    f"404 that is not the provider's not-found answer (wrong base_url or a proxy?): {url}",
                    **common,
                    detail=detail,
                )
            if self.auth is not None:
                self.auth.accepted(used)
            self.gate.succeeded()
            raise NotFound("user not found", **common, detail=detail)
        if status in REDIRECT_STATUSES:
            self.gate.succeeded()  # an answer; the provider is up
            location = headers.get("Location")
            if not location:
                reason = f"redirect without a Location from {url}"
            elif _leaves_origin(url, location):
                reason = f"redirect to another origin not followed: {url} -> {location}"
            else:
                reason = f"too many redirects (more than {MAX_REDIRECTS}): {url} -> {location}"
            raise ProviderError(reason, **common)
        if status in (401, 403):
            self.gate.succeeded()  # the provider is up (and a half-open probe must not hang)
            raise AuthError("credentials rejected", **common, detail=detail)
        if status >= 500:
            self._failed()
            raise TransientError("provider error", **common, detail=detail)
        self.gate.succeeded()
        raise ProviderError("request refused", **common, detail=detail)

    def _recognized_404(self, headers: Mapping[str, str], body: bytes) -> bool:
        assert self.not_found is not None
        try:
            return bool(self.not_found(headers, body))
        except Exception:  # a body the predicate chokes on is not the provider's answer
            return False

    def _detail(self, body: bytes) -> str | None:
        try:
            return self.error_detail(body)
        except Exception:  # an unparseable error body is still an error: keep the text
            return body[:200].decode("utf-8", "replace") or None


def _default_deadline(session: aiohttp.ClientSession) -> float:
    """Room for a connect and a couple of slow reads, never under a minute."""
    timeout = session.timeout
    return max(60.0, 2 * ((timeout.sock_connect or 0.0) + (timeout.sock_read or 0.0)))


def make_session(concurrency: int, connect_timeout: float, read_timeout: float) -> aiohttp.ClientSession:
    """One keep-alive session per provider, its pool matched to concurrency."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        # identity APIs authenticate by header: no cookie handling on every response
        cookie_jar=aiohttp.DummyCookieJar(),
        json_serialize=jsonutil.dumps,
        headers={"Accept": "application/json", "User-Agent": "syncd"},
    )
