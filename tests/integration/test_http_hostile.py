"""The HTTP layer against answers meant to hurt (issue 13): compression bombs,
redirects to another host, a Retry-After already past, 404s that are not
the provider's, and a provider whose 401s come at random.

Every server here is a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import functools
import itertools
import struct
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from syncd.errors import AuthError, CircuitOpen, MalformedResponse, NotFound, UnrecognizedNotFound
from syncd.http import BearerToken, Gate, ProviderClient, RetryPolicy, make_session
from syncd.testing.dialects import fake
from syncd.testing.dialects.fortanix import FortanixDialect
from syncd.testing.dialects.zitadel import ZitadelDialect
from syncd.testing.fake import retry_after_date
from tests.integration.conftest import seeded
from tests.integration.test_http_hardening import CLIENT_CREDENTIALS, ScriptedZitadel, last_errors, serving

MiB = 1 << 20
#: what a bomb inflates to: far over the limit, cheap to build (see _bomb)
INFLATED_MIB = 200


@asynccontextmanager
async def app_server(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def client_for(**kw: Any) -> AsyncIterator[ProviderClient]:
    session = make_session(4, 2.0, 5.0)
    gate = Gate("p", concurrency=4, circuit_failures=kw.pop("circuit_failures", 20))
    client = ProviderClient("p", session, gate, BearerToken("t"), **kw)
    try:
        yield client
    finally:
        await client.aclose()
        await session.close()


# -- 3: compression bombs -------------------------------------------------------------------
@functools.cache
def _bomb(encoding: str) -> bytes:
    """A JSON body of INFLATED_MIB MiB as ~200 KB of gzip, zlib ("deflate") or br.

    One deflate segment of 1 MiB ending in a full flush (which resets the
    window, so the segment decodes alike wherever it stands) is repeated:
    0.15 s instead of 1 s for compressing 200 MiB."""
    head, tail, chunk = b'{"padding": "', b'"}', b"a" * MiB
    if encoding == "br":
        brotli = pytest.importorskip("brotli", reason="brotli is not installed")
        return bytes(brotli.compress(head + chunk * INFLATED_MIB + tail, quality=5))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = b"".join(
        [
            c.compress(head) + c.flush(zlib.Z_FULL_FLUSH),
            (c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)) * INFLATED_MIB,
            c.compress(tail) + c.flush(),
        ]
    )
    crc, adler = zlib.crc32(head), zlib.adler32(head)
    for _ in range(INFLATED_MIB):
        crc, adler = zlib.crc32(chunk, crc), zlib.adler32(chunk, adler)
    crc, adler = zlib.crc32(tail, crc), zlib.adler32(tail, adler)
    size = len(head) + INFLATED_MIB * MiB + len(tail)
    if encoding == "gzip":  # RFC 1952
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw + struct.pack("<II", crc, size % 2**32)
    return b"\x78\xda" + raw + struct.pack(">I", adler)  # RFC 1950, what HTTP calls deflate


def _bomb_answer(encoding: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    body = _bomb(encoding)

    async def answer(request: web.Request) -> web.Response:
        # a Content-Length (~200 KB) well under the limit: the limit must count inflated bytes
        return web.Response(
            body=body, headers={"Content-Encoding": encoding, "Content-Type": "application/json"}
        )

    return answer


def _brotli_decodable() -> bool:
    try:
        from aiohttp.compression_utils import HAS_BROTLI
    except ImportError:
        return False
    return bool(HAS_BROTLI)


@pytest.mark.parametrize(
    "encoding",
    [
        "gzip",
        "deflate",
        pytest.param(
            "br",
            marks=pytest.mark.skipif(
                not _brotli_decodable(), reason="aiohttp's brotli support (Brotli) is not installed"
            ),
        ),
    ],
)
async def test_a_compression_bomb_is_cut_at_max_body_counting_inflated_bytes(encoding):
    """A ~200 KB body that inflates to 200 MiB: refused at 1 MiB of decoded
    bytes, without ever holding much more than that."""
    bomb = _bomb(encoding)
    assert len(bomb) < MiB  # the declared length passes the limit
    async with (
        app_server([web.get("/u/{id}", _bomb_answer(encoding))]) as url,
        client_for(max_body=MiB) as client,
    ):
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(MalformedResponse, match=f"body too large: more than {MiB} bytes"):
                await client.get_json(f"{url}/u/x")
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert peak < 16 * MiB, f"held {peak / MiB:.0f} MiB for a 1 MiB limit"
    assert elapsed < 2.0


async def test_a_gzip_bomb_fails_only_that_user(store, make_config, engine_for, monkeypatch):
    async with serving(ScriptedZitadel(), monkeypatch) as f:
        ids, engine = await seeded(store, f, make_config, engine_for, 3, max_body_bytes=MiB)
        f.dialect.user_handlers[ids[1]] = _bomb_answer("gzip")

        report = await engine.sync("zitadel")

    assert report.status == "ok" and report.counts["created"] == 2 and report.counts["failed"] == 1
    assert f"body too large: more than {MiB} bytes" in (await last_errors(store, "zitadel"))[ids[1]]


# -- 4: redirects ---------------------------------------------------------------------------
def _redirect(location: str, status: int = 302) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": location})

    return answer


async def test_a_redirect_to_another_origin_is_not_followed_and_nothing_is_mirrored(
    store, make_config, engine_for, monkeypatch
):
    """A redirects a user to B (another port) which serves a valid user: B
    must get no request (it would see our token) and its answer no mirror row."""
    async with serving(ScriptedZitadel(), monkeypatch) as a, fake("zitadel") as b:
        ids, engine = await seeded(store, a, make_config, engine_for, 3)
        b.users[ids[1]] = a.users[ids[1]]  # B would answer with a perfectly valid user
        elsewhere = f"{b.url}/v2/users/{ids[1]}"
        a.dialect.user_handlers[ids[1]] = _redirect(elsewhere, 307)

        report = await engine.sync("zitadel")

    assert b.requests == []
    assert report.status == "ok" and report.counts["created"] == 2 and report.counts["failed"] == 1
    mirrored = await store.pool.fetch("SELECT user_id FROM syncd.users WHERE provider = 'zitadel'")
    assert {r["user_id"] for r in mirrored} == {ids[0], ids[2]}
    error = (await last_errors(store, "zitadel"))[ids[1]]
    assert "redirect to another origin not followed" in error
    assert f"{a.url}/v2/users/{ids[1]}" in error and elsewhere in error


async def test_a_redirect_within_the_origin_is_followed_a_few_hops_at_most(
    store, make_config, engine_for, monkeypatch
):
    async with serving(ScriptedZitadel(), monkeypatch) as a:
        ids, engine = await seeded(store, a, make_config, engine_for, 3)
        [real] = [r.handler for r in ZitadelDialect.routes(a.dialect, a) if r.path == "/v2/users/{user_id}"]  # type: ignore[attr-defined]

        async def canonical(request: web.Request) -> web.StreamResponse:
            if request.query.get("canonical"):
                return await real(request)
            return web.Response(status=308, headers={"Location": f"{request.path}?canonical=1"})

        a.dialect.user_handlers[ids[0]] = canonical
        a.dialect.user_handlers[ids[1]] = _redirect(f"/v2/users/{ids[1]}")  # a loop

        report = await engine.sync("zitadel")

    assert report.counts["created"] == 2 and report.counts["failed"] == 1
    assert "too many redirects" in (await last_errors(store, "zitadel"))[ids[1]]
    loop = [r for r in a.requests if r.path.startswith(f"/v2/users/{ids[1]}")]
    assert len(loop) == 4  # the request and three same-origin hops


async def test_a_token_endpoint_redirect_is_not_followed(store, make_config, engine_for, monkeypatch):
    """The credentials go in the POST's body: a 307 would send them anywhere."""
    async with serving(ScriptedZitadel(), monkeypatch) as a, fake("zitadel") as b:
        a.dialect.token_script.append(_redirect(f"{b.url}/oauth/v2/token", 307))
        _, engine = await seeded(
            store,
            a,
            make_config,
            engine_for,
            1,
            **CLIENT_CREDENTIALS,
        )

        report = await engine.sync("zitadel")

    assert b.requests == []
    assert report.counts["failed"] == 1
    [error] = (await last_errors(store, "zitadel")).values()
    assert "redirected (307) to" in error and b.url in error and "not followed" in error


# -- Retry-After already past --------------------------------------------------------------
@pytest.mark.parametrize(("status", "retry_after"), [(429, "past"), (429, "0"), (503, "past")])
async def test_a_retry_after_already_past_is_the_minimum_backoff_never_a_burst(zitadel, status, retry_after):
    [uid] = zitadel.seed(1)
    value = retry_after_date(-3600) if retry_after == "past" else retry_after
    zitadel.inject(str(status), retry_after=value, times=3)
    base = 0.05
    async with client_for(policy=RetryPolicy(backoff_base=base, backoff_cap=0.1)) as client:
        client.auth = BearerToken(zitadel.token)
        doc = await client.get_json(f"{zitadel.url}/v2/users/{uid}")

    assert doc["user"]["userId"] == uid
    times = [r.at for r in zitadel.requests]
    assert [r.status for r in zitadel.requests] == [status] * 3 + [200]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= base - 0.002, gaps


# -- 5: a 404 that is not the provider's own ---------------------------------------------------
def _json_not_found(headers: Mapping[str, str], body: bytes) -> bool:
    """This test's provider answers a missing user with a JSON error naming it."""
    return headers.get("Content-Type", "").startswith("application/json") and b"could not be found" in body


def _not_found_routes() -> list[web.RouteDef]:
    async def html(request: web.Request) -> web.Response:
        return web.Response(
            status=404, text="<html><h1>404 Not Found</h1>nginx</html>", content_type="text/html"
        )

    async def json(request: web.Request) -> web.Response:
        return web.json_response({"code": 5, "message": "User could not be found"}, status=404)

    return [web.get("/html/{id}", html), web.get("/json/{id}", json)]


async def test_only_the_provider_s_own_404_is_not_found():
    async with app_server(_not_found_routes()) as url, client_for(not_found=_json_not_found) as client:
        with pytest.raises(NotFound):
            await client.get_json(f"{url}/json/x")
        with pytest.raises(UnrecognizedNotFound) as caught:
            await client.get_json(f"{url}/html/x")

    assert not isinstance(caught.value, NotFound)
    assert "not the provider's not-found answer" in str(caught.value)
    assert f"{url}/html/x" in str(caught.value)


async def test_without_a_not_found_check_every_404_is_not_found():
    async with app_server(_not_found_routes()) as url, client_for() as client:
        with pytest.raises(NotFound):
            await client.get_json(f"{url}/html/x")


async def test_a_not_found_check_that_raises_counts_as_unrecognized():
    def broken(headers: Mapping[str, str], body: bytes) -> bool:
        raise ValueError("cannot read that")

    async with app_server(_not_found_routes()) as url, client_for(not_found=broken) as client:
        with pytest.raises(UnrecognizedNotFound):
            await client.get_json(f"{url}/json/x")


async def test_many_unrecognized_404s_open_the_circuit():
    async with (
        app_server(_not_found_routes()) as url,
        client_for(not_found=_json_not_found, circuit_failures=20) as client,
    ):
        outcomes = []
        for i in range(25):
            try:
                await client.get_json(f"{url}/html/u{i}")
            except (UnrecognizedNotFound, CircuitOpen) as exc:
                outcomes.append(type(exc))
        state = client.gate.circuit.state

    assert outcomes == [UnrecognizedNotFound] * 20 + [CircuitOpen] * 5
    assert state == "open"


# -- 8: random 401s -----------------------------------------------------------------------------
async def test_random_401s_cost_at_most_the_users_refused_twice_never_the_pass(
    store, make_config, engine_for, monkeypatch
):
    """Fortanix answering 5 % of user GETs with 401: each is renewed and
    retried once; every user is asked for, and all but a handful refused
    twice are mirrored."""
    async with serving(FortanixDialect(), monkeypatch) as f:
        ids, engine = await seeded(
            store, f, make_config, engine_for, 2000, name="fortanix", sync={"batch_size": 200}
        )
        f.inject("401", probability=0.05, only_path="/sys/v1/users/")

        report = await engine.sync("fortanix")

    asked: dict[str, list[int]] = {}
    for r in f.user_requests():
        asked.setdefault(r.path.split("?")[0].rsplit("/", 1)[-1], []).append(r.status)
    assert set(asked) == set(ids), "a user was failed without being asked for"
    assert any(401 in statuses for statuses in asked.values())  # the fault did fire
    assert report.status == "ok", report.error
    failed = set(await last_errors(store, "fortanix"))
    assert report.counts["created"] == 2000 - len(failed) and len(failed) <= 20
    for uid in failed:  # each refused on its first request and on its retry
        assert asked[uid][-2:] == [401, 401]


class RotatedKeyFortanix(FortanixDialect):
    """The session endpoint grants ``grants`` sessions, then refuses the key."""

    def __init__(self, grants: int) -> None:
        self.grants = grants

    def routes(self, fake_: Any) -> list[web.RouteDef]:
        routes = super().routes(fake_)
        real = next(r.handler for r in routes if r.path == "/sys/v1/session/auth")  # type: ignore[attr-defined]

        async def auth(request: web.Request) -> web.StreamResponse:
            if self.grants <= 0:
                return web.Response(status=401, text="Invalid API key or credentials")
            self.grants -= 1
            return await real(request)

        return [
            web.post("/sys/v1/session/auth", auth),
            *(r for r in routes if r.path != "/sys/v1/session/auth"),
        ]  # type: ignore[attr-defined]


@pytest.mark.parametrize("grants", [0, 1], ids=["first_session", "renewal"])
async def test_a_session_endpoint_refusing_the_credentials_stops_the_pass_at_once(
    store, make_config, engine_for, monkeypatch, grants
):
    """Refused for the first session, or for the renewal after a 401: the pass stops."""
    dialect = RotatedKeyFortanix(grants)
    async with serving(dialect, monkeypatch) as f:
        _, engine = await seeded(
            store, f, make_config, engine_for, 300, name="fortanix", sync={"batch_size": 20}
        )
        if grants:
            f.inject("401", times=1, only_path="/sys/v1/users/")

        report = await engine.sync("fortanix")

    assert report.status == "failed"
    assert "credentials refused by the token endpoint" in (report.error or "")
    assert sum(1 for r in f.requests if r.path == "/sys/v1/session/auth") == grants + 1
    assert len(f.user_requests()) <= 8 * grants + 1  # the requests in flight when it was refused
    assert report.counts["created"] + report.counts["failed"] < 100  # the pass did not go on


async def test_a_refused_static_token_still_stops_the_pass(store, zitadel, make_config, engine_for):
    _, engine = await seeded(store, zitadel, make_config, engine_for, 300, sync={"batch_size": 20})
    zitadel.inject("401", times=None)

    report = await engine.sync("zitadel")

    assert report.status == "failed" and "credentials rejected" in (report.error or "")
    assert report.counts["failed"] < 100  # the batches in flight, not the pass


def test_auth_errors_stop_the_pass_unless_marked_otherwise() -> None:
    assert AuthError("x").stops_pass is True
