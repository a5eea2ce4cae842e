"""A fake provider server with switches for the faults real providers show.

One ``FakeProvider`` serves one provider type (its *dialect*: routes, bodies,
error shapes, auth flow) on 127.0.0.1. Tests change ``users`` directly, queue
faults with ``inject``, and read ``requests`` (arrival times, statuses) to
prove behaviour such as "no request before the Retry-After instant".
"""

from __future__ import annotations

import asyncio
import bisect
import random
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal, Protocol

import orjson
from aiohttp import web

from syncd import jsonutil
from syncd.http.auth import basic_auth
from syncd.testing.fake_listing import ListingQuirks
from syncd.testing.fake_oauth import FakeOAuth

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Dialect(Protocol):
    """What makes a fake speak like one provider."""

    type: str

    def routes(self, fake: FakeProvider) -> list[web.RouteDef]: ...

    def make_user(self, n: int) -> dict[str, Any]:
        """A valid, documented-shape body for the n-th synthetic user."""
        ...

    def user_id(self, doc: dict[str, Any]) -> str: ...

    def modify(self, doc: dict[str, Any], n: int = 1) -> dict[str, Any]:
        """The same user with a visible change (display name, version bumped)."""
        ...

    def error_body(self, status: int, message: str) -> tuple[bytes, str]:
        """``(body, content_type)`` of this provider's error shape."""
        ...

    def provider_config(self, name: str, base_url: str, token_env: str) -> dict[str, Any]:
        """A ``[[providers]]`` table that syncs from this fake."""
        ...


@dataclass
class Fault:
    kind: str
    times: int | None = 1
    probability: float | None = None
    retry_after: str | None = None
    delay: float = 0.0
    status: int | None = None
    only_path: str | None = None
    #: ``body`` faults: answer 200 with exactly these bytes
    body: bytes = b""
    content_type: str = "application/json"


@dataclass
class RequestRecord:
    at: float  # time.time() when the request arrived
    method: str
    path: str
    status: int = 0
    fault: str | None = None
    #: the request target as it arrived, still percent-encoded (``/Users/a%2Fb``)
    raw_path: str = ""
    #: the request's ``If-None-Match`` header (a conditional read), if any
    if_none_match: str | None = None


@dataclass
class Announcement:
    """A Retry-After the fake sent: no request should arrive before ``until``."""

    sent_at: float
    until: float


@dataclass
class RequestBudget:
    """At most ``per_second`` requests answered in any one second (a sliding
    window over the requests it admitted; a refused request costs nothing, so a
    client that waits the ``Retry-After`` it was given finds a full budget).
    ZITADEL Cloud averages its 50 requests/s over a minute; a per-second
    window is stricter and shows a burst at once."""

    per_second: int
    #: what a refused request is told (RFC 6585 §4: 429 may carry Retry-After)
    retry_after: str = "1"
    _admitted: deque[float] = field(default_factory=deque)

    def admit(self, now: float) -> bool:
        """Whether a request arriving at ``now`` (seconds) is within the
        budget; if so it counts against the next second."""
        while self._admitted and self._admitted[0] <= now - 1.0:
            self._admitted.popleft()
        if len(self._admitted) >= self.per_second:
            return False
        self._admitted.append(now)
        return True


@dataclass
class FakeProvider:
    dialect: Dialect
    token: str = "fake-token"
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RequestRecord] = field(default_factory=list)
    announcements: list[Announcement] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    #: tokens the fake's token endpoints issued and that are still valid
    issued_tokens: set[str] = field(default_factory=set)
    token_lifetime: int = 3600
    latency: float = 0.0
    #: headers added to every response (Webex's TrackingID)
    response_headers: dict[str, str] = field(default_factory=dict)
    #: serve bodies only: no request log, no faults (the benchmark's provider,
    #: as cheap as the framework allows, since it shares the cores with syncd)
    plain: bool = False
    #: how the list endpoint pages (its cap, and the quirks real servers show)
    listing: ListingQuirks = field(default_factory=ListingQuirks)
    #: what the list endpoint serves instead of a user's current document: a
    #: listing read from a projection that lags the writes (ZITADEL's does)
    projection: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: requests per second the provider answers (every path but ``/_fake/``);
    #: beyond it 429 with ``Retry-After: 1``. None = unlimited. Needs the
    #: middleware, so not with ``plain``.
    rate_limit: int | None = None
    #: the SCIM dialects' ETag of a by-id body (None: no ETag header); None
    #: here: the dialect's own (``dialects.scim.scim_etag``). A test swaps in
    #: a hostile one.
    etag_of: Callable[[str], str | None] | None = None
    #: 304 Not Modified answers the SCIM dialects gave to a matching If-None-Match
    not_modified: int = 0
    #: the credentials the provider takes: "bearer" (``token`` or a token its
    #: token endpoint issued), "basic" (``basic``: user and password), or
    #: "header" (``token`` as the whole value of the ``api_key_header``)
    auth: Literal["bearer", "basic", "header"] = "bearer"
    basic: tuple[str, str] = ("syncd", "fake-password")
    api_key_header: str = "X-API-Key"
    #: its OAuth 2.0 token endpoint (the dialects that have one)
    oauth: FakeOAuth = field(default_factory=FakeOAuth)
    _budget: RequestBudget | None = None
    url: str = ""
    _runner: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self, port: int = 0) -> str:
        app = web.Application(middlewares=[] if self.plain else [self._middleware])
        app.add_routes(self.dialect.routes(self))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- data --------------------------------------------------------------------
    def listed(self, uid: str) -> dict[str, Any]:
        """The user's document as the list endpoint serves it."""
        return self.projection.get(uid) or self.users[uid]

    def seed(self, count: int, start: int = 0) -> list[str]:
        ids = []
        for n in range(start, start + count):
            doc = self.dialect.make_user(n)
            uid = self.dialect.user_id(doc)
            self.users[uid] = doc
            ids.append(uid)
        return ids

    def modify(self, user_id: str, n: int = 1) -> None:
        self.users[user_id] = self.dialect.modify(self.users[user_id], n)

    def provider_config(self, name: str, token_env: str = "SYNCD_FAKE_TOKEN") -> dict[str, Any]:
        return self.dialect.provider_config(name, self.url, token_env)

    # -- faults ------------------------------------------------------------------
    def inject(self, kind: str, **kw: Any) -> Fault:
        """Queue a fault. ``kind``: 429, 503, 423, 500, 502 (status faults,
        optional ``retry_after``), ``slow`` (``delay`` seconds), ``reset``
        (connection dropped), ``truncated`` (half a JSON body), ``html`` (an
        HTML error page with 502), ``garbage`` (200 with invalid JSON),
        ``wrong_type`` (200 text/plain), ``missing_id`` (200 without the id),
        ``body`` (200 with the given ``body`` bytes), ``not_modified`` (304,
        whatever the request's If-None-Match: a broken cache or server),
        ``401``. ``times`` (None = forever) or ``probability`` say how often."""
        fault = Fault(kind=kind, **kw)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def _next_fault(self, path: str) -> Fault | None:
        for fault in list(self.faults):
            if fault.only_path and fault.only_path not in path:
                continue
            if fault.probability is not None:
                if random.random() < fault.probability:
                    return fault
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            return fault
        return None

    def user_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if "token" not in r.path and "session" not in r.path]

    def early_requests(self, grace: float = 0.05) -> list[RequestRecord]:
        """Requests that arrived after a Retry-After was announced (plus
        ``grace`` for requests already in flight) and before its instant."""
        arrivals = sorted(self.requests, key=lambda r: r.at)
        times = [r.at for r in arrivals]
        early: dict[int, RequestRecord] = {}
        for a in self.announcements:
            lo = bisect.bisect_right(times, a.sent_at + grace)
            hi = bisect.bisect_left(times, a.until - 0.001)
            for i in range(lo, hi):
                early[id(arrivals[i])] = arrivals[i]
        return list(early.values())

    # -- HTTP --------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        record = RequestRecord(
            at=time.time(),
            method=request.method,
            path=request.path_qs,
            raw_path=request.raw_path,
            if_none_match=request.headers.get("If-None-Match"),
        )
        self.requests.append(record)
        if self.latency:
            await asyncio.sleep(self.latency)
        control = request.path.startswith("/_fake/") or request.path.endswith(
            ("/token", "/access_token", "/auth")
        )
        fault: Fault | None = None
        if self._budget_refuses(request, record.at):
            # before the queued faults: a refused request uses none of them up
            assert self._budget is not None
            fault = Fault(kind="budget", status=429, retry_after=self._budget.retry_after)
        elif not control:
            # the path with its query: a fault can target one page of a listing
            fault = self._next_fault(request.path_qs)
        if fault is not None:
            record.fault = fault.kind
            response = await self._apply_fault(fault, request, handler)
        else:
            response = await handler(request)
        record.status = response.status
        response.headers.update(self.response_headers)
        return response

    def _budget_refuses(self, request: web.Request, now: float) -> bool:
        """``rate_limit`` counts every request but the fake's control routes
        (token requests too: a provider's limit is per client, not per path)."""
        if self.rate_limit is None or request.path.startswith("/_fake/"):
            return False
        if self._budget is None or self._budget.per_second != self.rate_limit:
            self._budget = RequestBudget(self.rate_limit)
        return not self._budget.admit(now)

    async def _apply_fault(self, fault: Fault, request: web.Request, handler: Handler) -> web.StreamResponse:
        kind = fault.kind
        if kind == "slow":
            await asyncio.sleep(fault.delay)
            return await handler(request)
        if kind == "reset":
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        if kind in {"truncated", "garbage", "wrong_type", "missing_id"}:
            good = await handler(request)
            body = good.body if isinstance(good, web.Response) else b"{}"
            if not isinstance(body, bytes):  # a str body (the SCIM dialects) is a payload by now
                body = good.text.encode() if isinstance(good, web.Response) and good.text else b"{}"
            if kind == "truncated":
                return web.Response(body=body[: max(1, len(body) // 2)], content_type="application/json")
            if kind == "garbage":
                return web.Response(body=b'{"id": "1", "oops": }', content_type="application/json")
            if kind == "wrong_type":
                return web.Response(body=b"OK", content_type="text/plain")
            doc = jsonutil.loads(body)
            return web.json_response(_drop_ids(doc), dumps=jsonutil.dumps)
        if kind == "body":
            return web.Response(body=fault.body, content_type=fault.content_type)
        if kind == "not_modified":
            return web.Response(status=304)
        if kind == "html":
            return web.Response(
                status=fault.status or 502,
                body=b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                content_type="text/html",
            )
        status = fault.status or int(kind)
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
            self.announcements.append(
                Announcement(sent_at=time.time(), until=_retry_instant(fault.retry_after))
            )
        body, ctype = self.dialect.error_body(status, f"injected {status}")
        return web.Response(status=status, body=body, headers=headers, content_type=ctype)

    # -- helpers for dialects -------------------------------------------------------
    def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.auth == "basic":
            return header == basic_auth(*self.basic)
        if self.auth == "header":
            return request.headers.get(self.api_key_header) == self.token
        if not header.startswith("Bearer "):
            return False
        token = header[len("Bearer ") :]
        return token == self.token or token in self.issued_tokens

    def issue_token(self) -> str:
        token = f"issued-{random.getrandbits(64):016x}"
        self.issued_tokens.add(token)
        return token

    def expire_tokens(self) -> None:
        """Every token the fake issued stops working (as after a provider's idle timeout)."""
        self.issued_tokens.clear()

    def error(self, status: int, message: str) -> web.Response:
        body, ctype = self.dialect.error_body(status, message)
        return web.Response(status=status, body=body, content_type=ctype)

    def user_response(self, user_id: str) -> web.Response:
        doc = self.users.get(user_id)
        if doc is None:
            return self.error(404, "User could not be found")
        return web.Response(body=orjson.dumps(doc), content_type="application/json")


def retry_after_date(seconds: float) -> str:
    """An HTTP-date ``seconds`` from now (RFC 9110 §5.6.7)."""
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


def _retry_instant(value: str) -> float:
    if value.strip().isdigit():
        return time.time() + int(value)
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(value).timestamp()


_ID_KEYS = {"id", "userId", "user_id"}


def _drop_ids(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _drop_ids(v) for k, v in doc.items() if k not in _ID_KEYS}
    return doc
