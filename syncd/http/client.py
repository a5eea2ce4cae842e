"""The client every provider's requests go through.

It owns what must be the same for every provider: timeouts and the request
deadline, bearer tokens (renewed once on 401), ``Retry-After`` (RFC 9110
§10.2.3) pausing the *whole* provider, the retry policy, the gate (rate
budget, adaptive concurrency, circuit breaker) and same-origin redirects.
aiohttp and JSON errors are translated here into ``syncd.errors``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import structlog
from yarl import URL

from syncd import jsonutil, metrics
from syncd.errors import AuthError, MalformedResponse, ProviderError, RateLimited, TransientError
from syncd.http import defaults
from syncd.http.auth import Auth
from syncd.http.deadlines import Deadlines
from syncd.http.etag import usable_etag
from syncd.http.gate import Gate
from syncd.http.redirects import MAX_REDIRECTS, REDIRECT_BODY, REDIRECT_STATUSES, same_origin_redirect
from syncd.http.response import (
    ErrorDetail,
    Health,
    NotFoundCheck,
    Request,
    Response,
    Rules,
    interpret,
    pause_ahead,
    read_body,
)
from syncd.http.retry import RetryPolicy
from syncd.http.session import default_deadline
from syncd.redact import may_hold_secrets, secret_markers, strip_secrets
from syncd.timeutil import utcnow

log = structlog.get_logger("syncd.http")


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


@dataclass(slots=True)
class _Tries:
    """One request's retries so far."""

    attempt: int = 0
    rate_waits: int = 0
    renewed: bool = False


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
        max_body: int = defaults.MAX_BODY,
        request_timeout: float | None = None,
        not_found: NotFoundCheck | None = None,
    ) -> None:
        self.provider = provider
        self.session = session
        self.gate = gate
        #: requests sent so far, by ``Request.kind`` (each attempt counts)
        self.sent: dict[str, int] = {}
        self.auth = auth
        self.policy = policy or RetryPolicy()
        #: how this provider's answers read: its error shape, tracking header and
        #: its own "no such user" 404 (headers, body); only that one is a
        #: ``NotFound``, which may lead to a deletion. None: every 404 is.
        self.rules = Rules(provider, error_detail or (lambda body: None), tracking_header, not_found)
        self.default_headers = dict(default_headers or {})
        self.redact_fields = tuple(redact_fields)
        #: a larger answer is a ``MalformedResponse`` (checked before and while reading)
        self.max_body = max_body
        self.deadlines = Deadlines(
            provider, request_timeout if request_timeout is not None else default_deadline(session)
        )
        # metric children resolved once: labels() takes a lock on every call
        self._fetch_seconds = metrics.FETCH_SECONDS.labels(provider)
        self._circuit_open = metrics.CIRCUIT_OPEN.labels(provider)
        self._rate_limited = metrics.RATE_LIMITED.labels(provider)
        self._circuit_open.set(0)
        self.secret_markers = secret_markers(self.redact_fields)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def request_timeout(self) -> float:
        """The deadline of one whole request (connect, send, every chunk of the body)."""
        return self.deadlines.timeout

    @request_timeout.setter
    def request_timeout(self, seconds: float) -> None:
        self.deadlines.timeout = seconds

    # -- the interface ---------------------------------------------------------------------
    async def get_json(self, url: str | URL, *, params: Mapping[str, str] | None = None) -> Any:
        """GET a JSON document, with every retry rule applied (see send)."""
        return self.document(await self.send(Request("GET", url, params)))

    async def post_json(self, url: str | URL, *, json: Any, params: Mapping[str, str] | None = None) -> Any:
        """POST a JSON query (a search: ZITADEL's ``POST /v2/users``) and read
        the JSON answer, with every retry rule applied; it must change nothing
        on the provider, since it may be sent again (see send)."""
        return self.document(await self.send(Request("POST", url, params, json)))

    def document(self, response: Response) -> Any:
        """The answer's JSON; credential material never leaves the HTTP layer
        (Wacht puts TOTP secrets and OAuth tokens in the user document)."""
        doc = jsonutil.parse_body(response.body, provider=self.provider, status=response.status)
        if may_hold_secrets(response.body, doc, self.secret_markers):
            doc = strip_secrets(doc, self.redact_fields)
        return doc

    async def send(self, request: Request) -> Response:
        """Make a read request and return its 2xx JSON answer (or, to a request
        with ``if_none_match``, a 304: ``Response.not_modified``), with every
        retry rule applied.

        Raises ``NotFound`` (the provider's own 404), ``UnrecognizedNotFound``
        (any other 404), ``AuthError`` (401/403 after one renewal),
        ``MalformedResponse``, ``RateLimited``/``TransientError`` once retries
        are exhausted, or ``ProviderError`` for other 4xx and redirects that
        leave the origin.
        """
        tries = _Tries()
        while True:
            try:
                return await self._once(request)
            except RateLimited as exc:
                if not await self._rate_limit_wait(exc, tries):
                    raise
            except AuthError as exc:
                if not self._renew(exc, tries, request.url):
                    raise
            except TransientError as exc:
                tries.attempt += 1
                if tries.attempt >= self.policy.max_attempts:
                    raise
                await self._backoff(exc, tries.attempt, self.policy.backoff(tries.attempt))

    # -- retry decisions ---------------------------------------------------------------------
    async def _rate_limit_wait(self, exc: RateLimited, tries: _Tries) -> bool:
        """Wait as a rate-limited answer asks; False when this request gives up."""
        tries.rate_waits += 1
        self.gate.rate_limited()
        self._rate_limited.inc()
        if tries.rate_waits > self.policy.max_rate_limit_waits:
            return False
        now = utcnow()
        wait = self.policy.retry_after(exc.retry_at, now, tries.attempt + 1)
        if wait.until is not None:
            return True  # the gate holds every request until then (paused by _answer)
        tries.attempt += 1
        if tries.attempt >= self.policy.max_attempts:
            return False
        if exc.status == 429:
            # a 429 without Retry-After (ZITADEL doesn't promise one) still
            # means "too fast": every worker of this process backs off
            self.gate.apply_pause(
                now + timedelta(seconds=wait.delay), "HTTP 429 without Retry-After: backoff"
            )
            log.warning(
                "provider.rate_limited",
                provider=self.provider,
                status=429,
                retry_after=exc.retry_after,
                backoff=round(wait.delay, 3),
            )
        else:
            await self._backoff(exc, tries.attempt, wait.delay)
        return True

    def _renew(self, exc: AuthError, tries: _Tries, url: str | URL) -> bool:
        """Renew the token a 401 refused, once per request; False when that can't help."""
        used = exc.used_authorization
        # no request was refused (the token endpoint was), the token is valid
        # but lacks a right (403), or it cannot be renewed: a new token won't help
        if used is None or exc.status == 403 or self.auth is None or not self.auth.renewable:
            return False
        if not self.auth.invalidate(used, exc):
            return False  # the credentials are refused (stops_pass)
        if tries.renewed:
            # refused again after a renewal: a flaky provider's 401 costs this
            # user (retried next pass), not the pass; the token flow counts
            # refused fresh tokens and declares the credentials refused
            exc.stops_pass = False
            log.warning("auth.refused_after_renewal", provider=self.provider, url=url, status=exc.status)
            return False
        tries.renewed = True
        log.info("auth.renewing", provider=self.provider)
        return True

    async def _backoff(self, exc: ProviderError, attempt: int, delay: float) -> None:
        log.warning(
            "provider.retrying",
            provider=self.provider,
            error=str(exc),
            status=exc.status,
            attempt=attempt,
            delay=round(delay, 3),
        )
        await self.sleep(delay)

    # -- one attempt -------------------------------------------------------------------------
    async def _once(self, request: Request) -> Response:
        headers = dict(self.default_headers)
        # never a header the ETag's server could split (checked where it was
        # stored too): without it the request is a plain GET, and a 304 an error
        etag = usable_etag(request.if_none_match)
        if etag is not None:
            headers["If-None-Match"] = etag
        ticket = await self.gate.acquire()
        answered = False
        try:
            try:
                answer = await self._exchange(request, headers)
            except MalformedResponse:
                answered = True  # an answer all the same (a body too large)
                raise
            answered = True
            return await self._answer(answer, headers.get("Authorization"), conditional=etag is not None)
        finally:
            if ticket and self.gate.circuit.probing(ticket):
                if answered:
                    # any answer (a 429, a 503 with Retry-After, a body too large)
                    # proves the provider alive; failures were recorded already
                    self._circuit_closed()
                else:  # cancelled, or the token could not be had: let another request probe
                    self.gate.circuit.abandon(ticket)

    async def _exchange(self, request: Request, headers: dict[str, str]) -> _Answer:
        """Send the request under a gate slot already held (released here)."""
        self.sent[request.kind] = self.sent.get(request.kind, 0) + 1
        metrics.REQUESTS.labels(self.provider, request.kind).inc()
        started = time.monotonic()
        try:
            # after the gate: a request that waited out a pause or a renewal uses the newest token
            await self._authorize(headers)
            while self.gate.paused():
                # announced while we waited for the token: its instant binds us too
                await self.gate.wait_turn()
                await self._authorize(headers)
            return await self._send(request, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._failed()
            kind = "timeout" if isinstance(exc, TimeoutError) else exc.__class__.__name__
            raise TransientError(f"request failed: {kind}", provider=self.provider) from exc
        finally:
            await self.gate.release()
            self._fetch_seconds.observe(time.monotonic() - started)

    async def _answer(self, answer: _Answer, used: str | None, *, conditional: bool = False) -> Response:
        """Apply what the answer says to the gate, circuit and token; the
        response, or its error raised."""
        verdict = interpret(
            self.rules, answer.url, answer.status, answer.headers, answer.body, conditional=conditional
        )
        if verdict.accepted and self.auth is not None:
            self.auth.accepted(used)
        if verdict.health is Health.UP:
            self._circuit_closed()
        elif verdict.health is Health.FAILING:
            self._failed()
        error = verdict.error
        if error is None:
            return Response(answer.status, answer.headers, answer.body, answer.url)
        if isinstance(error, RateLimited) and pause_ahead(error, utcnow()):
            await self._pause(error)
        if isinstance(error, AuthError):
            error.used_authorization = used
        raise error

    async def _send(self, request: Request, headers: Mapping[str, str]) -> _Answer:
        """One request under the request deadline; its cancellation comes out as ``TimeoutError``.

        Redirects are ours to follow (aiohttp would follow them anywhere and
        hand us another host's answer to mirror): within the origin, a few
        hops, since the origin is the authority we already send the token to
        and a reverse proxy that canonicalises a path (a trailing slash) is
        harmless; the answer still has to be the user asked for. A redirect
        to another origin, or one too many, is returned as it is, and
        ``interpret`` makes it a provider error. A POST follows none: its
        body would be dropped or sent on."""
        task = self.deadlines.watch()
        try:
            target, hop = request.url, 0
            while True:
                async with self.session.request(
                    request.method,
                    target,
                    params=request.params if hop == 0 else None,
                    json=request.json,
                    headers=headers,
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    if status in REDIRECT_STATUSES and hop < MAX_REDIRECTS and request.method == "GET":
                        following = same_origin_redirect(resp)
                        if following is not None:
                            await read_body(resp, REDIRECT_BODY, provider=self.provider, strict=False)
                            target, hop = following, hop + 1
                            continue
                    body = await read_body(resp, self.max_body, provider=self.provider, strict=status < 300)
                    return _Answer(status, resp.headers, body, str(resp.url))
        except asyncio.CancelledError:
            if not self.deadlines.expired(task):
                raise
            raise TimeoutError from None
        finally:
            self.deadlines.done(task)

    async def aclose(self) -> None:
        await self.deadlines.aclose()

    # -- auth, pauses, the circuit --------------------------------------------------------------
    async def _authorize(self, headers: dict[str, str]) -> None:
        if self.auth is None:
            return
        try:
            headers.update(await self.auth.headers(self.session))
        except RateLimited as exc:
            # the token endpoint's Retry-After pauses the provider like a GET's
            # (one already past is a backoff: see _rate_limit_wait)
            if pause_ahead(exc, utcnow()):
                # waiters re-raise the same error: log only the pause it started
                await self._pause(exc, always_log=False)
            raise

    async def _pause(self, exc: RateLimited, *, always_log: bool = True) -> None:
        """Pause the whole provider until ``exc.retry_at`` (capped)."""
        assert exc.retry_at is not None
        until, capped = self.policy.capped(exc.retry_at, utcnow())
        if capped:
            log.warning(
                "provider.retry_after_capped",
                provider=self.provider,
                retry_after=exc.retry_after,
                cap_seconds=self.policy.retry_after_cap,
            )
            # the capped instant, also for whoever holds this error (a token flow's cache)
            exc.retry_at = until
        if await self.gate.pause(until, f"HTTP {exc.status}") or always_log:
            log.warning(
                "provider.rate_limited",
                provider=self.provider,
                status=exc.status,
                retry_at=until.isoformat(),
                tracking_id=exc.tracking_id,
            )

    def _circuit_closed(self) -> None:
        if self.gate.circuit.opened_at is not None:
            self._circuit_open.set(0)
        self.gate.succeeded()

    def _failed(self) -> None:
        if self.gate.circuit.failure():
            self._circuit_open.set(1)
            log.error(
                "provider.circuit_open",
                provider=self.provider,
                failures=self.gate.circuit.failures,
                cooldown=self.gate.circuit.cooldown,
            )
