"""The HTTP layer under hostile or broken providers: pauses that hold every
queued request, token endpoints that rate-limit or fail, a circuit that must
not stick half-open, absurd Retry-After values, bodies that are not objects,
too large or trickled, and credentials a fresh token cannot fix.

Every provider here is a real HTTP server on 127.0.0.1 (``FakeProvider``);
a scripted dialect lets a test choose how the token endpoint, select_account
or one user's URL answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from syncd.errors import MalformedResponse
from syncd.http import MAX_BODY, BearerToken, Gate, ProviderClient, RetryPolicy, defaults, make_session
from syncd.providers import fortanix as fortanix_adapter
from syncd.providers import scim as scim_adapter
from syncd.providers import wacht as wacht_adapter
from syncd.providers import webex as webex_adapter
from syncd.providers import zitadel as zitadel_adapter
from syncd.testing.dialects import fake
from syncd.testing.dialects.fortanix import FortanixDialect
from syncd.testing.dialects.zitadel import ZitadelDialect
from syncd.testing.fake import Announcement, FakeProvider
from syncd.timeutil import MAX_RETRY_AFTER, parse_retry_after, utcnow
from tests.integration.conftest import TOKEN_ENV, seeded, wait_for

CLIENT_CREDENTIALS = {"token_env": None, "client_id": "syncd-client", "client_secret_env": TOKEN_ENV}
Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_answer(
    fake_: FakeProvider, status: int, body: bytes = b"", retry_after: str | None = None
) -> Answer:
    """An answer with ``status``; a Retry-After is recorded as an announcement."""

    async def answer(request: web.Request) -> web.StreamResponse:
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
            until = time.time() + int(retry_after)
            fake_.announcements.append(Announcement(sent_at=time.time(), until=until))
        return web.Response(status=status, body=body, headers=headers, content_type="text/plain")

    return answer


class ScriptedZitadel(ZitadelDialect):
    """ZITADEL whose token endpoint answers from a script first, and whose
    chosen users are served by a test's own handler."""

    def __init__(self) -> None:
        self.token_script: list[Answer] = []
        #: the token endpoint answers with a failure until this time.time()
        self.token_down_until = 0.0
        self.user_handlers: dict[str, Answer] = {}

    def routes(self, fake_: FakeProvider) -> list[web.RouteDef]:
        base = {r.path: r.handler for r in super().routes(fake_)}  # type: ignore[attr-defined]
        real_token, real_user = base["/oauth/v2/token"], base["/v2/users/{user_id}"]

        async def token(request: web.Request) -> web.StreamResponse:
            if self.token_script:
                return await self.token_script.pop(0)(request)
            if time.time() < self.token_down_until:
                return web.Response(status=500, text="token service restarting")
            return await real_token(request)

        async def user(request: web.Request) -> web.StreamResponse:
            handler = self.user_handlers.get(request.match_info["user_id"], real_user)
            return await handler(request)

        return [web.get("/v2/users/{user_id}", user), web.post("/oauth/v2/token", token)]


class UserSessionFortanix(FortanixDialect):
    """Fortanix with email/password sessions and a scripted select_account."""

    def __init__(self) -> None:
        self.select_script: list[Answer] = []
        self.selected: list[str] = []

    def routes(self, fake_: FakeProvider) -> list[web.RouteDef]:
        routes = [r for r in super().routes(fake_) if r.path != "/sys/v1/session/auth"]  # type: ignore[attr-defined]

        async def auth(request: web.Request) -> web.Response:
            return web.json_response(
                {"token_type": "Bearer", "expires_in": 600, "access_token": fake_.issue_token()}
            )

        async def select_account(request: web.Request) -> web.StreamResponse:
            if self.select_script:
                return await self.select_script.pop(0)(request)
            self.selected.append((await request.json())["acct_id"])
            return web.json_response({"acct_id": self.selected[-1]})

        return [
            web.post("/sys/v1/session/auth", auth),
            web.post("/sys/v1/session/select_account", select_account),
            *routes,
        ]

    def provider_config(self, name: str, base_url: str, token_env: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "fortanix",
            "base_url": base_url,
            "email": "ops@example.com",
            "password_env": token_env,
            "account_id": "acct-7",
        }


@asynccontextmanager
async def serving(dialect: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    f = FakeProvider(dialect=dialect)
    monkeypatch.setenv(TOKEN_ENV, f.token)
    async with f:
        yield f


@pytest.fixture
async def scripted(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    async with serving(ScriptedZitadel(), monkeypatch) as f:
        yield f


def token_posts(fake_: FakeProvider) -> list[Any]:
    return [r for r in fake_.requests if r.path == "/oauth/v2/token"]


async def last_errors(store, name: str) -> dict[str, str]:
    rows = await store.pool.fetch(
        "SELECT user_id, last_error FROM syncd.targets WHERE provider = $1 AND last_error IS NOT NULL", name
    )
    return {r["user_id"]: r["last_error"] for r in rows}


# -- 1: a pause binds requests already past the pause check -------------------------------
async def test_requests_queued_for_a_rate_token_wait_out_a_retry_after_announced_meanwhile(zitadel):
    """With max_rps, requests sleep in the token bucket after passing the pause
    check: a 429's Retry-After announced meanwhile must still hold them."""
    ids = zitadel.seed(16)
    session = make_session(4, 2.0, 2.0)
    gate = Gate("zitadel", concurrency=4, max_rps=10)
    client = ProviderClient("zitadel", session, gate, BearerToken(zitadel.token))
    url = f"{zitadel.url}/v2/users/{{}}"
    try:
        await asyncio.gather(*(client.get_json(url.format(uid)) for uid in ids[:10]))  # the burst
        zitadel.inject("429", retry_after="1")
        docs = await asyncio.gather(*(client.get_json(url.format(uid)) for uid in ids[10:]))
    finally:
        await session.close()

    assert [d["user"]["userId"] for d in docs] == ids[10:]
    [announced] = zitadel.announcements
    assert zitadel.early_requests() == [], "a queued request reached the provider inside its pause"
    assert sum(1 for r in zitadel.requests if r.at >= announced.until - 0.001) == 6


# -- 2: the token endpoint's 429 and failures ------------------------------------------------
async def test_a_token_endpoint_429_pauses_the_provider_and_the_token_is_asked_for_once_more(
    store, scripted, make_config, engine_for, logs
):
    scripted.dialect.token_script.append(status_answer(scripted, 429, b"slow down", retry_after="1"))
    _, engine = await seeded(
        store, scripted, make_config, engine_for, 20, concurrency=8, **CLIENT_CREDENTIALS
    )

    report = await engine.sync("zitadel")

    assert report.status == "ok" and report.counts["created"] == 20
    refused, granted = token_posts(scripted)  # not one POST per waiting worker
    assert (refused.status, granted.status) == (429, 200)
    [announced] = scripted.announcements
    assert granted.at >= announced.until - 0.001
    assert scripted.early_requests() == []
    assert await store.get_pause("zitadel") is not None  # shared with every replica
    limited = [e for e in logs if e["event"] == "provider.rate_limited"]
    assert len(limited) == 1 and limited[0]["status"] == 429


async def test_a_failing_token_endpoint_is_asked_once_per_failure_window_not_by_every_worker(
    store, scripted, make_config, engine_for
):
    scripted.dialect.token_down_until = time.time() + 0.3
    _, engine = await seeded(
        store, scripted, make_config, engine_for, 16, concurrency=8, **CLIENT_CREDENTIALS
    )
    engine.runtime("zitadel").client.auth.state.failure_ttl = 0.5  # type: ignore[union-attr]

    report = await engine.sync("zitadel")

    assert report.status == "ok" and report.counts["created"] == 16
    assert [r.status for r in token_posts(scripted)] == [500, 200]


# -- 3: the circuit breaker's probe ------------------------------------------------------------
async def test_a_half_open_probe_answered_with_429_closes_the_circuit_and_syncing_resumes(
    store, zitadel, make_config, engine_for
):
    _, engine = await seeded(
        store,
        zitadel,
        make_config,
        engine_for,
        6,
        concurrency=1,
        max_attempts=1,
        circuit_failures=3,
        circuit_cooldown="200ms",
    )
    zitadel.inject("500", times=3)
    first = await engine.sync("zitadel")
    gate = engine.runtime("zitadel").gate
    assert first.counts["failed"] == 6 and gate.circuit.state == "open"
    await wait_for(lambda: gate.circuit.state == "half_open", timeout=2)
    zitadel.inject("429", times=1)  # the probe's answer: the provider is up, only busy

    await store.make_due("zitadel", None)
    second = await engine.sync("zitadel")

    assert gate.circuit.state == "closed"
    assert second.status == "ok" and second.counts["failed"] == 1
    await store.make_due("zitadel", None)
    assert (await engine.sync("zitadel")).counts["failed"] == 0
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users") == 6


async def test_a_probe_whose_token_request_fails_does_not_wedge_the_circuit(
    store, scripted, make_config, engine_for
):
    _, engine = await seeded(
        store,
        scripted,
        make_config,
        engine_for,
        1,
        max_attempts=1,
        circuit_failures=1,
        circuit_cooldown="100ms",
        **CLIENT_CREDENTIALS,
    )
    rt = engine.runtime("zitadel")
    rt.client.auth.state.failure_ttl = 0.05  # type: ignore[union-attr]
    scripted.inject("500")
    assert (await engine.sync("zitadel")).counts["failed"] == 1
    await wait_for(lambda: rt.gate.circuit.state == "half_open", timeout=2)
    assert rt.client.auth is not None
    rt.client.auth.invalidate()  # the probe must fetch a new token ...
    scripted.dialect.token_script.append(status_answer(scripted, 502, b"bad gateway"))  # ... and can't

    await store.make_due("zitadel", None)
    assert (await engine.sync("zitadel")).counts["failed"] == 1
    await store.make_due("zitadel", None)
    third = await engine.sync("zitadel")

    assert third.counts["created"] == 1 and rt.gate.circuit.state == "closed"
    assert [r.status for r in token_posts(scripted)] == [200, 502, 200]


async def test_a_cancelled_probe_lets_the_next_request_probe(zitadel):
    [uid] = zitadel.seed(1)
    session = make_session(2, 2.0, 2.0)
    gate = Gate("zitadel", concurrency=2, circuit_failures=1, circuit_cooldown=0.1)
    client = ProviderClient(
        "zitadel", session, gate, BearerToken(zitadel.token), policy=RetryPolicy(max_attempts=1)
    )
    url = f"{zitadel.url}/v2/users/{uid}"
    try:
        zitadel.inject("500")
        with pytest.raises(Exception, match="provider error"):
            await client.get_json(url)
        await wait_for(lambda: gate.circuit.state == "half_open", timeout=2)
        zitadel.inject("slow", delay=0.3)
        probe = asyncio.create_task(client.get_json(url))
        await wait_for(lambda: len(zitadel.requests) == 2, timeout=2)
        probe.cancel()  # e.g. the daemon's pass was stopped
        with pytest.raises(asyncio.CancelledError):
            await probe

        doc = await client.get_json(url)
    finally:
        await session.close()

    assert doc["user"]["userId"] == uid
    assert gate.circuit.state == "closed"


# -- 4: an absurd Retry-After ---------------------------------------------------------------------
async def test_a_retry_after_too_large_for_a_date_is_capped_and_logged(
    store, zitadel, make_config, engine_for, logs
):
    far = parse_retry_after("99999999999999")
    assert far is not None and far <= utcnow() + timedelta(seconds=MAX_RETRY_AFTER)
    _, engine = await seeded(store, zitadel, make_config, engine_for, 3, retry_after_cap="1s")
    zitadel.inject("429", retry_after="99999999999999")

    report = await engine.sync("zitadel")

    assert report.status == "ok" and report.counts["created"] == 3
    [capped] = [e for e in logs if e["event"] == "provider.retry_after_capped"]
    assert capped["retry_after"] == "99999999999999" and capped["cap_seconds"] == 1.0


# -- 5: valid JSON that is not an object -----------------------------------------------------------
@pytest.mark.parametrize(
    "normalize",
    [
        zitadel_adapter.normalize,
        scim_adapter.normalize,
        webex_adapter.normalize,
        wacht_adapter.normalize,
        fortanix_adapter.normalize,
    ],
    ids=["zitadel", "scim", "webex", "wacht", "fortanix"],
)
@pytest.mark.parametrize(("doc", "kind"), [(None, "null"), ([], "array"), ("x", "string"), (7, "number")])
def test_every_adapter_refuses_a_json_body_that_is_not_an_object(normalize, doc, kind) -> None:
    with pytest.raises(MalformedResponse, match=f"expected a JSON object, got {kind}"):
        normalize(doc)


@pytest.mark.parametrize(
    ("provider", "body", "kind"), [("zitadel", b"null", "null"), ("scim", b"[]", "array")]
)
async def test_a_200_that_is_not_a_json_object_fails_only_that_user(
    store, make_config, engine_for, logs, monkeypatch, provider, body, kind
):
    async with serving(fake(provider).dialect, monkeypatch) as f:
        ids, engine = await seeded(store, f, make_config, engine_for, 4, name=provider)
        f.inject("body", body=body, times=None, only_path=ids[1])

        report = await engine.sync(provider)

    assert report.status == "ok" and report.counts["created"] == 3 and report.counts["failed"] == 1
    [failed] = [e for e in logs if e["event"] == "user.fetch_failed"]
    assert failed["user_id"] == ids[1] and failed["error_type"] == "MalformedResponse"
    assert f"expected a JSON object, got {kind}" in (await last_errors(store, provider))[ids[1]]


# -- 6: credentials a fresh token cannot fix -------------------------------------------------------
async def test_a_refused_renewed_token_fails_the_pass_without_asking_for_more_tokens(
    store, zitadel, make_config, engine_for, logs
):
    """The token endpoint grants tokens, but every GET answers 401 (say the
    client lost its role): renewing once is worth it, renewing per user is a storm."""
    _, engine = await seeded(
        store,
        zitadel,
        make_config,
        engine_for,
        60,
        concurrency=8,
        sync={"batch_size": 20},
        **CLIENT_CREDENTIALS,
    )
    zitadel.inject("401", times=None)

    report = await engine.sync("zitadel")
    await store.make_due("zitadel", None)
    again = await engine.sync("zitadel")  # within the refusal window: no token request at all

    assert report.status == again.status == "failed"
    assert "credentials rejected" in (report.error or "")
    # the first token, and renewals until max_refused_renewals fresh tokens were refused
    # in a row (one refused fresh token may be a flaky provider, see test_http_hostile)
    assert len(token_posts(zitadel)) == 1 + defaults.MAX_REFUSED_RENEWALS
    assert sum(1 for e in logs if e["event"] == "auth.renewed_token_refused") == 1
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users") == 0


async def test_a_403_is_not_answered_by_renewing_the_token(store, zitadel, make_config, engine_for):
    """403 means the token is valid but may not read this: a new token changes nothing."""
    _, engine = await seeded(store, zitadel, make_config, engine_for, 10, concurrency=4, **CLIENT_CREDENTIALS)
    zitadel.inject("403", times=None)

    report = await engine.sync("zitadel")

    assert report.status == "failed" and "status=403" in (report.error or "")
    assert len(token_posts(zitadel)) == 1


# -- 7: bodies too large, answers trickled ---------------------------------------------------------
async def test_an_oversized_answer_is_refused_whether_declared_or_streamed(
    store, scripted, make_config, engine_for, logs
):
    big = b'{"padding": "' + b"a" * MAX_BODY + b'"}'

    async def declared(request: web.Request) -> web.StreamResponse:
        return web.Response(body=big, content_type="application/json")

    async def streamed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for i in range(0, len(big), 1 << 20):
                await resp.write(big[i : i + (1 << 20)])
        except ConnectionError:
            pass  # the client stopped reading, as it should
        return resp

    ids, engine = await seeded(store, scripted, make_config, engine_for, 4)
    scripted.dialect.user_handlers.update({ids[1]: declared, ids[2]: streamed})

    report = await engine.sync("zitadel")

    assert report.counts["created"] == 2 and report.counts["failed"] == 2
    errors = await last_errors(store, "zitadel")
    assert "Content-Length" in errors[ids[1]] and "body too large" in errors[ids[1]]
    assert "body too large: more than" in errors[ids[2]]
    failed = [e for e in logs if e["event"] == "user.fetch_failed"]
    assert {e["error_type"] for e in failed} == {"MalformedResponse"}


async def test_an_answer_trickled_byte_by_byte_times_out_instead_of_holding_a_worker(
    store, scripted, make_config, engine_for
):
    """sock_read restarts with every chunk: only a deadline for the whole request ends this."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            await resp.write(b"{")
            for _ in range(100):
                await asyncio.sleep(0.05)
                await resp.write(b" ")
        except ConnectionError:
            pass
        return resp

    ids, engine = await seeded(
        store, scripted, make_config, engine_for, 3, max_attempts=1, read_timeout="300ms"
    )
    engine.runtime("zitadel").client.request_timeout = 0.5
    scripted.dialect.user_handlers[ids[0]] = trickle
    started = time.monotonic()

    report = await engine.sync("zitadel")

    assert time.monotonic() - started < 1.5
    assert report.counts["created"] == 2 and report.counts["failed"] == 1
    assert "request failed: timeout" in (await last_errors(store, "zitadel"))[ids[0]]


async def test_the_default_deadline_leaves_room_for_the_configured_timeouts() -> None:
    """A provider configured with a long read_timeout is not cut short by the deadline."""
    for connect, read, at_least in [(10, 30, 70), (10, 300, 610)]:
        session = make_session(1, connect, read)
        try:
            client = ProviderClient("p", session, Gate("p", concurrency=1))
            assert client.request_timeout >= at_least and client.max_body == MAX_BODY
        finally:
            await session.close()


# -- 8: Fortanix select_account --------------------------------------------------------------------
async def test_a_select_account_5xx_with_a_non_utf8_body_is_retried_not_a_refusal(
    store, make_config, engine_for, monkeypatch
):
    dialect = UserSessionFortanix()
    async with serving(dialect, monkeypatch) as f:
        dialect.select_script.append(status_answer(f, 502, b"\xff\xfe upstream \xc3("))
        _, engine = await seeded(store, f, make_config, engine_for, 5, name="fortanix", concurrency=4)
        engine.runtime("fortanix").client.auth.state.failure_ttl = 0.1  # type: ignore[union-attr]

        report = await engine.sync("fortanix")

    assert report.status == "ok" and report.counts["created"] == 5
    assert dialect.selected == ["acct-7"]  # the second session selected the account
    assert sum(1 for r in f.requests if r.path == "/sys/v1/session/auth") == 2


async def test_a_select_account_refusal_fails_the_pass_with_the_provider_s_words(
    store, make_config, engine_for, monkeypatch
):
    dialect = UserSessionFortanix()
    async with serving(dialect, monkeypatch) as f:
        dialect.select_script.append(status_answer(f, 403, b"not a member of this account \xff"))
        _, engine = await seeded(store, f, make_config, engine_for, 3, name="fortanix")

        report = await engine.sync("fortanix")

    assert report.status == "failed"
    assert "select_account refused" in (report.error or "") and "not a member" in (report.error or "")


async def test_the_request_deadline_tells_its_own_timeout_from_a_cancellation():
    """The deadline cancels a request and reports a timeout; a pass cancelled
    from outside (SIGTERM after the grace) still sees CancelledError, and no
    deadline task is left behind after close."""
    from syncd.errors import TransientError

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slow"
    session = make_session(4, 1.0, 10.0)
    client = ProviderClient("p", session, Gate("p", concurrency=4), policy=RetryPolicy(max_attempts=1))
    try:
        client.request_timeout = 0.2
        started = time.monotonic()
        with pytest.raises(TransientError, match="timeout"):
            await client.get_json(url)
        assert time.monotonic() - started < 1.0

        client.request_timeout = 60
        pending = asyncio.create_task(client.get_json(url))
        await wait_for(lambda: client.deadlines.in_flight, timeout=2)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert not client.deadlines.in_flight
    finally:
        await client.aclose()
        assert client.deadlines.sweeper is None
        await session.close()
        await runner.cleanup()
