"""A provider's answer: reading its body within a limit, and what its status means.

``interpret`` is pure: an answer in, the error it is (if any) and what it
says about the provider's health out. The client applies that to the gate,
the circuit and the token flow."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from yarl import URL

from syncd.errors import (
    AuthError,
    MalformedResponse,
    NotFound,
    ProviderError,
    RateLimited,
    TransientError,
    UnrecognizedNotFound,
)
from syncd.http.redirects import REDIRECT_STATUSES, not_followed
from syncd.timeutil import parse_retry_after

#: statuses whose ``Retry-After`` pauses the provider (RFC 6585 §4, RFC 9110 §15.6.4, RFC 4918 §11.3)
RATE_LIMIT_STATUSES = frozenset({429, 503, 423})

ErrorDetail = Callable[[bytes], "str | None"]
#: ``(response headers, body)`` of a 404 → is it the provider's own not-found answer?
NotFoundCheck = Callable[[Mapping[str, str], bytes], bool]


@dataclass(frozen=True, slots=True)
class Request:
    """A read request as an adapter builds it (no I/O): the client sends it.
    ``url`` is a ``yarl.URL`` built ``encoded=True`` (see ``providers.urls``)."""

    method: str
    url: URL | str
    params: Mapping[str, str] | None = None
    json: Any = None
    #: what it is for, counted by ``syncd_requests_total{kind}``: get (one
    #: user), batch (users by id), list (a listing's page), check, search
    kind: str = "get"
    #: the ETag of the copy we hold: sent as ``If-None-Match``, and then (only
    #: then) a ``304 Not Modified`` is an answer (RFC 9110 §13.1.2, §15.4.5)
    if_none_match: str | None = None


class Response:
    """A 2xx JSON answer (or a 304 to a conditional request: ``not_modified``):
    status, headers, the body's bytes and the URL that answered.
    ``fingerprint(salt)`` tells one body from another without parsing it."""

    __slots__ = ("body", "headers", "status", "url")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes, url: str) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url

    @property
    def not_modified(self) -> bool:
        """A 304: the copy whose ETag the request sent is still current."""
        return self.status == 304

    @property
    def etag(self) -> str | None:
        """The answer's ``ETag`` header as it came (not yet checked: ``http.etag``)."""
        return self.headers.get("ETag")

    def fingerprint(self, salt: bytes) -> str:
        """The body's SHA-256, salted with what shapes the record made of it."""
        return hashlib.sha256(salt + self.body).hexdigest()

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.url}, {len(self.body)} bytes)"


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


def is_json_content_type(content_type: str) -> bool:
    ct = content_type.split(";", 1)[0].strip().lower()
    return ct == "" or ct == "application/json" or ct.endswith("+json")


def rate_limited(retry_after: str | None, message: str, *, status: int, **common: Any) -> RateLimited | None:
    """A 429/503/423, or a 5xx naming a ``Retry-After``: the provider asked us to wait."""
    if status not in RATE_LIMIT_STATUSES and not (retry_after and status >= 500):
        return None
    exc = RateLimited(message, retry_at=parse_retry_after(retry_after), status=status, **common)
    exc.retry_after = retry_after
    return exc


class Health(enum.Enum):
    """What an answer says about the provider, for the gate and the circuit."""

    UP = "up"  # an answer: the provider is up (closes the circuit, AIMD recovers)
    FAILING = "failing"  # counts toward opening the circuit
    UNKNOWN = "unknown"  # neither (a 429: busy, not down)


@dataclass(frozen=True, slots=True)
class Verdict:
    #: None: a 2xx JSON answer, to be read
    error: ProviderError | None
    health: Health
    #: the credentials the request carried were accepted
    accepted: bool = False


@dataclass(frozen=True, slots=True)
class Rules:
    """How one provider's answers read (its adapter's error shape and 404)."""

    provider: str
    error_detail: ErrorDetail
    tracking_header: str | None = None
    not_found: NotFoundCheck | None = None

    def detail(self, body: bytes) -> str | None:
        try:
            return self.error_detail(body)
        except Exception:  # an unparseable error body is still an error: keep the text
            return body[:200].decode("utf-8", "replace") or None

    def recognized_404(self, headers: Mapping[str, str], body: bytes) -> bool:
        assert self.not_found is not None
        try:
            return bool(self.not_found(headers, body))
        except Exception:  # a body the predicate chokes on is not the provider's answer
            return False


def interpret(
    rules: Rules,
    url: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    conditional: bool = False,
) -> Verdict:
    """What an answer to a read request is: a JSON body to read, "not modified"
    (a 304 to a ``conditional`` request, one that sent If-None-Match), or which error."""
    tracking = headers.get(rules.tracking_header) if rules.tracking_header else None
    common: dict[str, Any] = {"provider": rules.provider, "status": status, "tracking_id": tracking}
    if 200 <= status < 300:
        return _success(headers, body, common)
    if status == 304:
        if conditional:
            return Verdict(None, Health.UP, accepted=True)
        # RFC 9110 §15.4.5: only a conditional GET may be answered 304; to one
        # without If-None-Match it says nothing about the user (no body to read)
        error = ProviderError("304 Not Modified to a request that sent no If-None-Match", **common)
        return Verdict(error, Health.UP)
    detail = rules.detail(body)
    message = f"provider asked us to slow down ({status})"
    limited = rate_limited(headers.get("Retry-After"), message, **common, detail=detail)
    if limited is not None:
        # a pause is the client's to apply; without an instant a 5xx is a failure
        failing = limited.retry_at is None and status >= 500
        return Verdict(limited, Health.FAILING if failing else Health.UNKNOWN)
    if status == 404:
        return _not_found(rules, url, headers, body, common, detail)
    if status in REDIRECT_STATUSES:
        # an answer; the provider is up
        return Verdict(ProviderError(not_followed(url, headers.get("Location")), **common), Health.UP)
    if status in (401, 403):
        # the provider is up (and a half-open probe must not hang)
        return Verdict(AuthError("credentials rejected", **common, detail=detail), Health.UP)
    if status >= 500:
        return Verdict(TransientError("provider error", **common, detail=detail), Health.FAILING)
    return Verdict(ProviderError("request refused", **common, detail=detail), Health.UP)


def _success(headers: Mapping[str, str], body: bytes, common: dict[str, Any]) -> Verdict:
    content_type = headers.get("Content-Type", "")
    if is_json_content_type(content_type):
        return Verdict(None, Health.UP, accepted=True)
    error = MalformedResponse(
        f"expected JSON, got content type {content_type!r}",
        **common,
        detail=body[:120].decode("utf-8", "replace"),
    )
    return Verdict(error, Health.UP, accepted=True)


def _not_found(
    rules: Rules,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    common: dict[str, Any],
    detail: str | None,
) -> Verdict:
    if rules.not_found is not None and not rules.recognized_404(headers, body):
        # not the provider's own answer: never a step toward a deletion, and
        # a wrong path or a proxy in the way is the provider failing for us
        error = UnrecognizedNotFound(
            f"404 that is not the provider's not-found answer (wrong base_url or a proxy?): {url}",
            **common,
            detail=detail,
        )
        return Verdict(error, Health.FAILING)
    return Verdict(NotFound("user not found", **common, detail=detail), Health.UP, accepted=True)


def pause_ahead(exc: RateLimited, now: datetime) -> bool:
    """A ``Retry-After`` instant that has not passed yet (one already past is a backoff)."""
    return exc.retry_at is not None and exc.retry_at > now
