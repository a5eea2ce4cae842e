"""Only the provider's own "no such user" may lead to a deletion (issue 13,
item 5): each adapter's ``is_not_found`` against the example bodies and
against every 404 that is not that answer, then the whole path against a
real server behind a wrong base_url path and a proxy's HTML 404."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.providers import REGISTRY, fortanix, scim, wacht, webex, zitadel
from syncd.testing.dialects import DIALECTS, fake
from tests.integration.conftest import FAST, TOKEN_ENV

FIXTURES = Path(__file__).parent.parent / "fixtures"
JSON = {"Content-Type": "application/json"}
SCIM_JSON = {"Content-Type": "application/scim+json"}
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
HTML = {"Content-Type": "text/html; charset=utf-8"}

HTML_404 = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><hr>nginx</body></html>"
#: what aiohttp (and so the fakes) answer for a path with no route
AIOHTTP_404 = b"404: Not Found"
#: Go's net/http, and grpc-gateway's answer for a path it has no route for
GO_404 = b"404 page not found"
GATEWAY_404 = b'{"code": 5, "message": "Not Found", "details": []}'
#: JSON 404s of the wrong shape: no SCIM Error schema, another status, other APIs
WRONG_JSON_404 = [
    b'{"error": "not found"}',
    b'{"status": 404, "detail": "User not found"}',
    b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400", "detail": "bad"}',
    b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": "no status"}',
    b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": true}',
    b'{"message": "Not Found"}',
    b'["not", "an", "object"]',
    b'"User not found"',
    b"null",
    b"{not json",
]


def example(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


ALL = {
    "scim": scim.is_not_found,
    "webex": webex.is_not_found,
    "wacht": wacht.is_not_found,
    "zitadel": zitadel.is_not_found,
    "fortanix": fortanix.is_not_found,
}


# -- the provider's own answer ----------------------------------------------------------------
def test_scim_error_with_status_404_string_or_number_is_not_found() -> None:
    assert scim.is_not_found(SCIM_JSON, example("webex-error-scim.json"))  # "status": "404"
    assert scim.is_not_found(SCIM_JSON, example("wacht-error-scim.json"))  # "status": 404
    assert scim.is_not_found({}, example("webex-error-scim.json"))  # no Content-Type at all
    # schema URIs are case-insensitive (RFC 7643 §2.1)
    assert scim.is_not_found(
        JSON, b'{"schemas": ["URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:ERROR"], "status": " 404 "}'
    )


def test_webex_only_its_scim_error_is_not_found_never_its_router_answer() -> None:
    assert webex.is_not_found(SCIM_JSON, example("webex-error-scim.json"))
    # "The URI requested is invalid or the resource … does not exist": the router's
    # general shape can't tell a wrong org_id from a gone user
    assert not webex.is_not_found(JSON, example("webex-error-general.json"))


def test_wacht_both_error_shapes_are_not_found() -> None:
    assert wacht.is_not_found(JSON, example("wacht-error-documented.json"))
    assert wacht.is_not_found(SCIM_JSON, example("wacht-error-scim.json"))
    assert wacht.is_not_found(JSON, b'{"errors": [{"message": "User not found", "code": "404"}]}')
    # the same shape saying something else is not "no such user"
    assert not wacht.is_not_found(JSON, b'{"errors": [{"message": "Unauthorized", "code": 401}]}')
    assert not wacht.is_not_found(JSON, b'{"errors": []}')
    assert not wacht.is_not_found(JSON, b'{"errors": [{"code": 404}]}')


def test_zitadel_error_json_with_code_5_and_its_error_detail_is_not_found() -> None:
    assert zitadel.is_not_found(JSON, example("zitadel-error-404.json"))
    # the error id alone (no details) is ZITADEL's too
    assert zitadel.is_not_found(JSON, b'{"code": 5, "message": "User could not be found (QUERY-Dfbg2)"}')
    assert zitadel.is_not_found(
        JSON, b'{"code": "not_found", "message": "User could not be found (QUERY-Dfbg2)"}'
    )
    # grpc-gateway's answer for a path it has no route for: code 5, but not ZITADEL's error
    assert not zitadel.is_not_found(JSON, GATEWAY_404)
    # ZITADEL's shape with another code (16 = UNAUTHENTICATED)
    assert not zitadel.is_not_found(JSON, b'{"code": 16, "message": "Errors.Token.Invalid (AUTH-7fs1e)"}')
    assert not zitadel.is_not_found(JSON, b'{"code": true, "message": "x (QUERY-Dfbg2)"}')


def test_fortanix_plain_text_naming_the_user_is_not_found() -> None:
    # NOTES.md: Fortanix's error bodies are plain text, not JSON
    assert fortanix.is_not_found(TEXT, b"user not found")
    assert fortanix.is_not_found(TEXT, b"User does not exist\n")
    assert fortanix.is_not_found({}, b"No such user")
    assert fortanix.is_not_found(JSON, b'{"message": "user not found"}')
    # a 404 about something else, or a framework's generic one
    assert not fortanix.is_not_found(TEXT, b"sobject does not exist")
    assert not fortanix.is_not_found(TEXT, AIOHTTP_404)
    assert not fortanix.is_not_found(TEXT, GO_404)
    assert not fortanix.is_not_found(TEXT, b"Not Found")
    assert not fortanix.is_not_found(HTML, b"<p>user not found</p>")
    assert not fortanix.is_not_found(TEXT, b"user not found\n" + b"x" * 600)


# -- anything else ----------------------------------------------------------------------------
@pytest.mark.parametrize("ptype", sorted(ALL))
def test_an_html_page_an_empty_body_or_a_framework_404_is_not_not_found(ptype: str) -> None:
    check = ALL[ptype]
    assert not check(HTML, HTML_404)
    assert not check(TEXT, HTML_404)  # a page whatever its Content-Type says
    assert not check({}, b"")
    assert not check(JSON, b"")
    assert not check(JSON, b"   \n")
    assert not check(TEXT, AIOHTTP_404)
    assert not check(TEXT, GO_404)
    assert not check(JSON, GATEWAY_404)


@pytest.mark.parametrize("ptype", sorted(ALL))
@pytest.mark.parametrize("body", WRONG_JSON_404)
def test_a_json_404_of_the_wrong_shape_is_not_not_found(ptype: str, body: bytes) -> None:
    assert not ALL[ptype](JSON, body)


@pytest.mark.parametrize("ptype", ["scim", "webex", "wacht", "fortanix"])
def test_another_providers_not_found_is_not_this_ones(ptype: str) -> None:
    assert not ALL[ptype](JSON, example("zitadel-error-404.json"))


def test_an_html_page_carrying_a_scim_error_body_is_not_not_found() -> None:
    assert not scim.is_not_found(HTML, example("webex-error-scim.json"))


@pytest.mark.parametrize("ptype", sorted(ALL))
def test_each_provider_class_exposes_its_check_and_the_fakes_404_passes_it(ptype: str) -> None:
    """The engine hands ``cls.not_found`` to the HTTP layer; the fakes' own
    "no such user" must pass it (the deletion tests rely on that)."""
    assert REGISTRY[ptype].not_found is ALL[ptype]
    body, ctype = DIALECTS[ptype]().error_body(404, "User not found")
    assert REGISTRY[ptype].not_found({"content-type": ctype}, body)


# -- the whole path ---------------------------------------------------------------------------
async def _targets(store) -> list:
    return await store.pool.fetch("SELECT * FROM syncd.targets ORDER BY user_id")


async def test_a_wrong_base_url_path_never_deletes_and_shows_the_error(
    store, make_config, engine_for, monkeypatch
):
    """The SCIM fake behind ``base_url + "/wrong"`` answers every user with
    aiohttp's text/plain "404: Not Found": two passes with
    delete_confirmations = 1 delete no one, and every target shows why."""
    f = fake("scim")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(4)
        good = await engine_for(make_config(("corp", f), **FAST))
        await store.add_targets("corp", ids)
        assert (await good.sync("corp")).counts["created"] == 4
        await good.close()

        wrong = await engine_for(make_config(("corp", f), base_url=f.url + "/wrong", **FAST))
        for _ in range(2):
            await store.make_due("corp", None)
            report = await wrong.sync("corp")
            assert report.counts["deleted"] == 0 and report.counts["failed"] == 4, report.counts
            assert report.counts["not_found"] == 0

        # the requests went out, and the server answered them with its 404 for unknown paths
        assert len([r for r in f.requests if r.path.startswith("/wrong/Users/")]) == 8
        assert await store.pool.fetchval("SELECT count(*) FROM syncd.users WHERE deleted_at IS NULL") == 4
        assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox WHERE type = 'user.deleted'") == 0
        for t in await _targets(store):
            assert t["not_found_count"] == 0 and t["last_status"] != "deleting"
            assert "not the provider's not-found answer" in t["last_error"], t["last_error"]
            assert "/wrong/Users/" in t["last_error"]


@pytest.mark.parametrize("ptype", ["zitadel", "wacht", "fortanix", "webex", "scim"])
async def test_a_proxys_html_404_never_deletes_but_the_providers_own_404_does(
    ptype, store, make_config, engine_for, monkeypatch
):
    f = fake(ptype)
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(3)
        engine = await engine_for(make_config((ptype, f), **FAST))
        await store.add_targets(ptype, ids)
        assert (await engine.sync(ptype)).counts["created"] == 3

        users = "/users/" if ptype in ("zitadel", "fortanix") else "/Users/"
        f.inject("html", status=404, times=None, only_path=users)  # a proxy's 404 page
        for _ in range(2):
            await store.make_due(ptype, None)
            report = await engine.sync(ptype)
            assert report.counts["deleted"] == 0 and report.counts["failed"] == 3, report.counts
        assert await store.pool.fetchval("SELECT count(*) FROM syncd.users WHERE deleted_at IS NULL") == 3
        assert all("404" in t["last_error"] for t in await _targets(store))

        # the provider's own answer still counts: the same user gone for real is deleted
        f.clear_faults()
        del f.users[ids[0]]
        await store.make_due(ptype, None)
        report = await engine.sync(ptype)
        assert report.counts["deleted"] == 1 and report.counts["unchanged"] == 2, report.counts
        row = await store.pool.fetchrow("SELECT deleted_at FROM syncd.users WHERE user_id = $1", ids[0])
        assert row["deleted_at"] is not None
