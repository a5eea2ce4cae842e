"""Discovery against a real third-party SCIM 2 server: `scim2-server` from
PyPI (python-scim), run as a process of its `scim2-server` command
(``python -m scim2_server.testserver.cli``) on 127.0.0.1 with a bearer
token (``--bearer-token``; syncd's ``token_env``), its users created
through its own SCIM API (``POST /Users``). Its command checks nothing but
bearer tokens, so HTTP Basic is tested through a tiny aiohttp reverse proxy
in front of it (``basic_proxy``).

What the server does, as these tests found it (0.8.3):

- ServiceProviderConfig: ``filter.supported`` true, ``filter.maxResults``
  1000, no ``pagination`` section (RFC 9865), so no ``defaultPageSize``:
  ``GET /Users`` without ``count`` answers every user in one page.
- It honours ``count`` and ``startIndex`` (1-based, echoed), and caps
  ``count`` at ``filter.maxResults`` (or ``pagination.maxPageSize``) silently:
  ``itemsPerPage`` says how many came, ``totalResults`` stays the whole.
  syncd asks for ``min(100, maxResults)`` a page, so the default server
  lists 130 users in two pages; one that announces ``maxResults = 50``, in
  three; one that caps at ``maxPageSize = 40`` without saying so in
  ``filter.maxResults``, in four (syncd continues where the short page ended).
- Its by-id 404 is SCIM's own error (``application/scim+json``, the Error
  schema, ``"status": "404"``): syncd recognises it, and deletes on it.
- Without the token it answers 401 with ``WWW-Authenticate: Bearer``.
- Filters: a bad one is a 400 ``invalidFilter`` (the listing fails with
  it); with ``filter.supported`` false it answers a filter with 501, and
  syncd does not send one. It pages by index, sorted by id: a user deleted
  between two pages moves the later ones back, and ``totalResults`` moves
  with it, which syncd refuses as incomplete.
- ``meta.location`` is built from the host the request named: the same user
  read as ``localhost`` and as ``127.0.0.1`` gives two documents (a
  host-name change upstream, in small): syncd writes it with no event.
  It keeps the enterprise extension as sent.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from scim2_server.utils import load_default_service_provider_config

from syncd import config as config_mod
from syncd.config import Config
from syncd.discovery.listing import Verdict
from syncd.engine import Engine
from syncd.http import basic_auth
from syncd.model.listing import Page
from syncd.providers.listing import list_settings
from syncd.providers.scim import is_not_found
from tests.integration.conftest import FAST, TOKEN_ENV, free_port

TOKEN = "scim2-server-test-token"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_JSON = "application/scim+json"
N = 130


class Scim2Server:
    """A running `scim2-server` process and a client of its SCIM API."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, session: aiohttp.ClientSession) -> None:
        self.proc, self.url, self.session = proc, url, session

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": SCIM_JSON}
        data = None
        if body is not None:
            headers["Content-Type"] = SCIM_JSON
            data = json.dumps(body)
        async with self.session.request(
            method, self.url + path, data=data, params=params, headers=headers
        ) as r:
            text = await r.text()
            return r.status, json.loads(text) if text.strip() else None

    async def create(self, n: int) -> str:
        status, doc = await self.call("POST", "/Users", scim_user(n))
        assert status == 201, doc
        return str(doc["id"])

    async def create_many(self, count: int, start: int = 0) -> list[str]:
        return [await self.create(n) for n in range(start, start + count)]

    async def delete(self, user_id: str) -> None:
        status, doc = await self.call("DELETE", f"/Users/{user_id}")
        assert status == 204, doc


def scim_user(n: int) -> dict[str, Any]:
    return {
        "schemas": [USER],
        "userName": f"user-{n:03d}",
        "displayName": f"User {n}",
        "name": {"givenName": "User", "familyName": f"N{n:03d}"},
        "emails": [{"value": f"user-{n:03d}@example.com", "type": "work", "primary": True}],
        "active": True,
    }


async def spawn(workdir: Path, service_provider_config: dict[str, Any] | None) -> tuple[Any, int]:
    """Start `scim2-server` on a free port; return once it says it serves
    (its first line), retrying on another port if one was taken meanwhile."""
    args = ["--hostname", "127.0.0.1", "--bearer-token", TOKEN]
    if service_provider_config is not None:
        spc = workdir / "service-provider-config.json"
        spc.write_text(json.dumps(service_provider_config))
        args += ["--service-provider-config", str(spc)]
    for _ in range(3):
        port = free_port()
        with (workdir / "server.log").open("a") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "scim2_server.testserver.cli",
                *args,
                "--port",
                str(port),
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        if line.startswith(b"Serving SCIM on"):
            return proc, port
        await proc.wait()  # the port was taken between free_port and its bind
    raise AssertionError(f"scim2-server did not start: {(workdir / 'server.log').read_text()[-2000:]}")


def default_config() -> dict[str, Any]:
    """The server's own default ServiceProviderConfig (every feature, index paging)."""
    return load_default_service_provider_config().model_dump(mode="json")


@pytest.fixture
async def scim2_server() -> AsyncIterator[Callable[..., Awaitable[Scim2Server]]]:
    """Start a `scim2-server` (optionally with its ServiceProviderConfig
    changed); stopped, and its temporary files removed, after the test."""
    started: list[tuple[Any, aiohttp.ClientSession]] = []
    workdir = Path(tempfile.mkdtemp(prefix="syncd-scim2-server-"))

    async def start(**spc_changes: Any) -> Scim2Server:
        spc = None
        if spc_changes:
            spc = default_config() | spc_changes
        here = workdir / str(len(started))
        here.mkdir()
        proc, port = await spawn(here, spc)
        session = aiohttp.ClientSession()
        started.append((proc, session))
        return Scim2Server(proc, f"http://127.0.0.1:{port}/v2", session)

    try:
        yield start
    finally:
        for proc, session in started:
            await session.close()
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def scim_config(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Config]:
    """A config with one ``scim`` provider, ``corp``, on the given server."""

    def build(server: Scim2Server, token: str = TOKEN, **over: Any) -> Config:
        monkeypatch.setenv(TOKEN_ENV, token)
        provider = {
            "name": "corp",
            "type": "scim",
            "base_url": server.url,
            "token_env": TOKEN_ENV,
            "discover": "1h",
            **FAST,
            **over,
        }
        data = {
            "database": {"url": db_url},
            "sync": {"delete_confirmations": 1, "max_delete_fraction": 1.0},
            "providers": [provider],
        }
        return config_mod.from_dict(data, source="<test>")

    return build


async def pages_read(engine: Engine) -> list[Page]:
    """The listing's pages, as syncd reads them from the server."""
    return [page async for page in engine.runtime("corp").connection.list_pages()]


def shape(pages: list[Page]) -> list[tuple[Any, int, Any, Any]]:
    """Per page: the startIndex asked for, users in it, the startIndex the
    server echoed, the next one syncd asks for."""
    return [(p.cursor, len(p.ids), p.echoed, p.next) for p in pages]


async def target_ids(store) -> set[str]:
    return set(await store.target_sources("corp"))


async def mirrored(store) -> set[str]:
    rows = await store.pool.fetch(
        "SELECT user_id FROM syncd.users WHERE provider = 'corp' AND deleted_at IS NULL"
    )
    return {r["user_id"] for r in rows}


async def event_types(store) -> list[str]:
    return [r["type"] for r in await store.pool.fetch("SELECT type FROM syncd.outbox ORDER BY seq")]


async def list_again(store) -> None:
    await store.pool.execute("UPDATE syncd.discovery SET next_at = now()")


async def test_what_the_server_announces_and_how_it_pages(scim2_server):
    server = await scim2_server()
    status, spc = await server.call("GET", "/ServiceProviderConfig")
    assert status == 200
    assert spc["filter"] == {"supported": True, "maxResults": 1000}
    assert "pagination" not in spc  # no defaultPageSize: without count, one page of everyone
    assert [s["type"] for s in spc["authenticationSchemes"]] == ["oauthbearertoken"]
    ids = await server.create_many(12)
    _, everyone = await server.call("GET", "/Users")
    assert (everyone["totalResults"], everyone["itemsPerPage"]) == (12, 12)
    # count and startIndex are honoured, startIndex is echoed, the total is the whole
    _, page = await server.call("GET", "/Users", startIndex="6", count="5")
    assert (page["startIndex"], page["itemsPerPage"], page["totalResults"]) == (6, 5, 12)
    assert [r["id"] for r in page["Resources"]] == [r["id"] for r in everyone["Resources"][5:10]]
    _, past = await server.call("GET", "/Users", startIndex="13", count="5")
    assert (past["Resources"], past["totalResults"]) == ([], 12)
    # its by-id 404 is SCIM's own "no such user", which syncd deletes on
    await server.delete(ids[0])
    async with server.session.get(
        f"{server.url}/Users/{ids[0]}", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as r:
        assert r.status == 404 and r.content_type == SCIM_JSON
        assert is_not_found(r.headers, await r.read())
    async with server.session.get(f"{server.url}/Users") as r:
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_capped_server_is_listed_over_pages_and_mirrored(
    scim2_server, scim_config, store, engine_for
):
    # the server announces a cap of 50 a page, and keeps to it
    server = await scim2_server(filter={"supported": True, "maxResults": 50})
    ids = await server.create_many(N)
    _, over = await server.call("GET", "/Users", startIndex="1", count="100")
    assert (over["itemsPerPage"], over["totalResults"]) == (50, N)  # a larger count is capped, silently
    engine = await engine_for(scim_config(server))
    connection = engine.runtime("corp").connection
    assert "a SCIM ListResponse (130 user(s))" in await connection.check()
    assert (await list_settings(connection.adapter, connection.client)).page_size == 50
    assert shape(await pages_read(engine)) == [(1, 50, 1, 51), (51, 50, 51, 101), (101, 30, 101, None)]

    report = await engine.discover("corp")
    assert report.verdict is Verdict.COMPLETE, report.reason
    assert (report.listed, report.new, report.missing) == (N, N, 0)
    assert await target_ids(store) == set(ids)
    synced = await engine.sync("corp")
    assert (synced.counts["created"], synced.counts["failed"]) == (N, 0)
    assert await mirrored(store) == set(ids)
    row = await store.pool.fetchrow(
        "SELECT username, display_name, email, active, source_version FROM syncd.users"
        " WHERE provider = 'corp' AND user_id = $1",
        ids[7],
    )
    assert dict(row) == {
        "username": "user-007",
        "display_name": "User 7",
        "email": "user-007@example.com",
        "active": True,
        "source_version": (await server.call("GET", f"/Users/{ids[7]}"))[1]["meta"]["version"],
    }

    # upstream: one user deleted, one created, through the server's own API
    gone = ids[5]
    await server.delete(gone)
    added = await server.create(N)
    await list_again(store)
    report = await engine.discover("corp")
    assert report.verdict is Verdict.COMPLETE, report.reason
    assert (report.listed, report.new, report.missing, report.unchanged) == (N, 1, 1, N - 1)
    # the listing removed nothing: the user is still mirrored, still a target
    assert gone in await mirrored(store) and gone in await target_ids(store)
    assert "user.deleted" not in await event_types(store)
    # the next pass reads both by id: the removed user's 404 deletes it
    synced = await engine.sync("corp")
    assert (synced.counts["created"], synced.counts["deleted"], synced.counts["failed"]) == (1, 1, 0)
    assert await mirrored(store) == (set(ids) - {gone}) | {added}
    assert (await event_types(store)).count("user.deleted") == 1


async def test_the_default_server_answers_syncd_page_of_100(scim2_server, scim_config, engine_for):
    server = await scim2_server()
    await server.create_many(N)
    engine = await engine_for(scim_config(server))
    connection = engine.runtime("corp").connection
    assert (await list_settings(connection.adapter, connection.client)).page_size == 100  # min(100, 1000)
    assert shape(await pages_read(engine)) == [(1, 100, 1, 101), (101, 30, 101, None)]
    report = await engine.discover("corp")
    assert report.verdict is Verdict.COMPLETE and report.listed == N, report.reason


async def test_a_silently_capped_page_is_followed_where_it_ended(scim2_server, scim_config, engine_for):
    # RFC 9865's maxPageSize caps below what syncd asks (100), and the
    # server's filter.maxResults (1000) does not say so: short pages, not a short listing
    server = await scim2_server(pagination={"cursor": False, "index": True, "maxPageSize": 40})
    ids = await server.create_many(N)
    engine = await engine_for(scim_config(server))
    assert shape(await pages_read(engine)) == [
        (1, 40, 1, 41),
        (41, 40, 41, 81),
        (81, 40, 81, 121),
        (121, 10, 121, None),
    ]
    report = await engine.discover("corp")
    assert report.verdict is Verdict.COMPLETE, report.reason
    assert (report.listed, report.new) == (N, N)
    assert len(set(ids)) == N


async def test_a_filtered_listing_lists_exactly_that_user(scim2_server, scim_config, store, engine_for):
    server = await scim2_server()
    await server.create_many(30)
    # a value that only arrives intact when the query is encoded right ("+" is a space in a query)
    wanted = "ann+ops&team=1@example.com"
    status, doc = await server.call("POST", "/Users", {"schemas": [USER], "userName": wanted})
    assert status == 201, doc
    await server.call("POST", "/Users", {"schemas": [USER], "userName": "ann ops&team=1@example.com"})
    engine = await engine_for(scim_config(server, discover_filter=f'userName eq "{wanted}"'))
    report = await engine.discover("corp")
    assert report.verdict is Verdict.COMPLETE, report.reason
    assert report.listed == 1
    assert await target_ids(store) == {doc["id"]}


async def test_a_filter_is_not_sent_to_a_server_that_says_it_has_none(
    scim2_server, scim_config, store, engine_for
):
    server = await scim2_server(filter={"supported": False, "maxResults": 1000})
    await server.create_many(3)
    status, refused = await server.call("GET", "/Users", filter='userName eq "user-001"')
    assert status == 501, refused  # what it would have answered
    engine = await engine_for(scim_config(server, discover_filter='userName eq "user-001"'))
    report = await engine.discover("corp")
    assert report.verdict is Verdict.FAILED and "filter.supported" in report.reason, report.reason
    assert await target_ids(store) == set()


async def test_a_refused_token_fails_the_listing_and_changes_nothing(
    scim2_server, scim_config, store, engine_for
):
    server = await scim2_server()
    await server.create_many(3)
    engine = await engine_for(scim_config(server, token="not-the-token"))
    report = await engine.discover("corp")
    assert report.verdict is Verdict.FAILED and "401" in report.reason, report.reason
    assert await target_ids(store) == set()


async def test_a_filter_the_server_refuses_fails_the_listing_with_its_reason(
    scim2_server, scim_config, store, engine_for
):
    server = await scim2_server()
    await server.create_many(3)
    engine = await engine_for(scim_config(server, discover_filter="userName eq user-001"))  # unquoted
    report = await engine.discover("corp")
    assert report.verdict is Verdict.FAILED, report.reason
    assert "400" in report.reason and "invalidFilter" in report.reason
    assert await target_ids(store) == set()


async def test_a_directory_changing_under_the_listing_is_refused_until_it_holds_still(
    scim2_server, scim_config, store, engine_for, monkeypatch
):
    # startIndex paging over a directory that changes between two pages:
    # one user deleted after the first page moves every later user back by
    # one, and one of them would never be listed; totalResults moves with it
    server = await scim2_server(filter={"supported": True, "maxResults": 50})
    ids = await server.create_many(N)
    engine = await engine_for(scim_config(server))
    connection = engine.runtime("corp").connection
    walk = connection.list_pages
    deleted: list[str] = []

    async def deleting_after_the_first_page() -> AsyncIterator[Page]:
        async for page in walk():
            yield page
            if not deleted:
                deleted.append(page.ids[0])
                await server.delete(page.ids[0])

    monkeypatch.setattr(connection, "list_pages", deleting_after_the_first_page)
    report = await engine.discover("corp")
    assert report.verdict is Verdict.INCOMPLETE, report.reason
    assert "the total changed from 130 to 129" in report.reason
    assert await target_ids(store) == set()
    monkeypatch.setattr(connection, "list_pages", walk)
    await list_again(store)
    report = await engine.discover("corp")
    assert report.verdict is Verdict.COMPLETE and report.listed == N - 1, report.reason
    assert await target_ids(store) == set(ids) - set(deleted)


# -- HTTP Basic (issue #17) --------------------------------------------------------------------
# scim2-server's command accepts static bearer tokens only (``--bearer-token``;
# its ServiceProviderConfig can announce ``httpbasic``, but the command checks
# nothing but bearer tokens). So Basic is put in front of it: a tiny aiohttp
# reverse proxy that takes ``Authorization: Basic`` (RFC 7617), as django-scim2
# or SCIMMY deployments do, and forwards to the server with its bearer token.
BASIC = ("sync-bot", "pa:ss wörd")


@pytest.fixture
async def basic_proxy() -> AsyncIterator[Callable[[Scim2Server], Awaitable[str]]]:
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession(auto_decompress=False)

    async def start(server: Scim2Server) -> str:
        async def forward(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Authorization") != basic_auth(*BASIC):
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="SCIM"'})
            path = request.match_info["path"]
            headers = {"Authorization": f"Bearer {TOKEN}", "Accept": request.headers.get("Accept", "*/*")}
            if request.content_type:
                headers["Content-Type"] = request.content_type
            async with session.request(
                request.method,
                f"{server.url}/{path}",
                params=request.query,
                data=await request.read(),
                headers=headers,
                allow_redirects=False,
            ) as r:
                body = await r.read()
                return web.Response(
                    status=r.status, body=body, headers={"Content-Type": r.headers["Content-Type"]}
                )

        app = web.Application()
        app.router.add_route("*", "/v2/{path:.*}", forward)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}/v2"

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()
        await session.close()


async def test_basic_auth_through_a_proxy_mirrors_the_users_and_a_wrong_password_stops(
    scim2_server, basic_proxy, scim_config, store, engine_for, monkeypatch
):
    server = await scim2_server()
    ids = await server.create_many(12)
    url = await basic_proxy(server)
    monkeypatch.setenv("SCIM_PASSWORD", BASIC[1])
    proxied = Scim2Server(server.proc, url, server.session)
    cfg = scim_config(proxied, token_env=None, username=BASIC[0], password_env="SCIM_PASSWORD")
    engine = await engine_for(cfg)
    assert "a SCIM ListResponse (12 user(s))" in await engine.runtime("corp").connection.check()
    report = await engine.discover("corp")
    assert report.verdict is Verdict.COMPLETE and report.listed == 12, report.reason
    synced = await engine.sync("corp")
    assert (synced.counts["created"], synced.counts["failed"]) == (12, 0)
    assert await mirrored(store) == set(ids)

    # the password is changed on the server's side: the pass stops, no one is deleted
    monkeypatch.setenv("SCIM_PASSWORD", "not-the-password")
    await engine.close()
    engine = await engine_for(
        scim_config(proxied, token_env=None, username=BASIC[0], password_env="SCIM_PASSWORD")
    )
    await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
    refused = await engine.sync("corp")
    assert refused.status == "failed" and "credentials" in (refused.error or ""), refused
    assert refused.counts["deleted"] == 0
    assert await mirrored(store) == set(ids)


async def test_a_bearer_token_mirrors_the_users_of_the_real_server(
    scim2_server, scim_config, store, engine_for
):
    server = await scim2_server()
    ids = await server.create_many(5)
    engine = await engine_for(scim_config(server))
    await store.add_targets("corp", ids)
    synced = await engine.sync("corp")
    assert (synced.counts["created"], synced.counts["failed"]) == (5, 0)
    assert await mirrored(store) == set(ids)


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def test_a_new_host_name_is_no_event_storm_and_the_enterprise_columns_are_filled(
    scim2_server, scim_config, store, engine_for
):
    """The server names each user's ``meta.location`` after the host it was
    asked on: reading it as ``localhost`` instead of ``127.0.0.1`` (what a
    host-name change upstream does) changes every user's document and
    nothing about the user. No event; the raw documents are current."""
    server = await scim2_server()
    ids = []
    for n in range(8):
        body = scim_user(n) | {
            "schemas": [USER, ENTERPRISE],
            ENTERPRISE: {"employeeNumber": f"E{n}", "department": "Ops", "manager": {"value": "m-1"}},
        }
        status, doc = await server.call("POST", "/Users", body)
        assert status == 201, doc
        ids.append(str(doc["id"]))
    engine = await engine_for(scim_config(server))
    await store.add_targets("corp", ids)
    assert (await engine.sync("corp")).counts["created"] == len(ids)
    rows = await store.pool.fetch(
        "SELECT employee_number, department, manager_id, raw #>> '{meta,location}' AS location FROM syncd.users"
    )
    assert sorted(r["employee_number"] for r in rows) == [f"E{n}" for n in range(8)]
    assert {(r["department"], r["manager_id"]) for r in rows} == {("Ops", "m-1")}
    assert all(r["location"].startswith("http://127.0.0.1:") for r in rows)
    events = len(await event_types(store))
    await engine.close()

    moved = Scim2Server(server.proc, server.url.replace("127.0.0.1", "localhost"), server.session)
    engine = await engine_for(scim_config(moved))
    await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
    report = await engine.sync("corp")

    assert (report.counts["unchanged"], report.counts["failed"]) == (len(ids), 0), report.counts
    assert len(await event_types(store)) == events
    locations = await store.pool.fetch("SELECT raw #>> '{meta,location}' AS location FROM syncd.users")
    assert all(r["location"].startswith("http://localhost:") for r in locations)
