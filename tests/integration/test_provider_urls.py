"""User ids go into the URL as exactly one path segment, for every provider
(issue 13, item 7), checked on the wire: what path the fake received."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from yarl import URL

from syncd.errors import ProviderError
from syncd.providers.base import join_url, path_segment, user_url
from syncd.testing.dialects import fake
from syncd.testing.fake import FakeProvider
from tests.integration.conftest import FAST, TOKEN_ENV

#: each would reach another path, add a query, or name another user if sent as is
HOSTILE_IDS = ["../_log", "a?b=c", "a/b", "a#b", "100%", "a+b==", "x/../../y", "%2e%2e", "a b", "é"]
#: where each provider type's users live on its fake
USERS_PATH = {
    "zitadel": "/v2/users",
    "fortanix": "/sys/v1/users",
    "scim": "/Users",
    "wacht": "/scim/v2/7309876543210000/Users",
    "webex": "/identity/scim/0ae87ade-8c8a-4952-af08-318798958d0c/v2/Users",
}


def with_id(ptype: str, doc: dict[str, Any], user_id: str) -> dict[str, Any]:
    """The fake's user ``doc`` answering under ``user_id``."""
    if ptype == "zitadel":
        doc["user"]["userId"] = user_id
    elif ptype == "fortanix":
        doc["user_id"] = user_id
    else:
        doc["id"] = user_id
    return doc


def seed_ids(f: FakeProvider, ptype: str, ids: list[str]) -> None:
    for n, uid in enumerate(ids):
        f.users[uid] = with_id(ptype, f.dialect.make_user(n), uid)


def test_an_id_is_escaped_as_exactly_one_segment() -> None:
    assert path_segment("../_log") == "..%2F_log"
    assert path_segment("a?b=c") == "a%3Fb%3Dc"
    assert path_segment("a+b==") == "a%2Bb%3D%3D"
    assert path_segment("100%") == "100%25"
    url = join_url("https://idp.example/scim/v2", "a/b")
    assert isinstance(url, URL) and url.raw_path == "/scim/v2/a%2Fb" and url.raw_query_string == ""
    # built from a URL already holding escaped segments, they stay escaped
    assert join_url(join_url("https://h/base", "org/1"), "#x").raw_path == "/base/org%2F1/%23x"


@pytest.mark.parametrize("bad", ["", ".", ".."])
def test_an_id_that_cant_be_one_segment_is_that_users_error(bad: str) -> None:
    with pytest.raises(ValueError):
        path_segment(bad)
    with pytest.raises(ProviderError, match="cannot be sent as a URL path segment"):
        user_url("https://h/Users", bad, "corp")


@pytest.mark.parametrize("ptype", ["zitadel", "wacht", "fortanix", "webex", "scim"])
async def test_hostile_ids_arrive_as_exactly_one_path_segment(
    ptype, store, make_config, engine_for, monkeypatch
):
    f = fake(ptype)
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        seed_ids(f, ptype, HOSTILE_IDS)
        engine = await engine_for(make_config((ptype, f), **FAST))
        await store.add_targets(ptype, HOSTILE_IDS)
        report = await engine.sync(ptype)
        # each was served by the fake's route for that very user, and mirrored under its id
        assert report.counts["created"] == len(HOSTILE_IDS) and report.counts["failed"] == 0, report.counts
        mirrored = {r["user_id"] for r in await store.pool.fetch("SELECT user_id FROM syncd.users")}
        assert mirrored == set(HOSTILE_IDS)

        arrived = sorted(r.raw_path.split("?", 1)[0] for r in f.user_requests())
        expected = sorted(f"{USERS_PATH[ptype]}/{quote(uid, safe='')}" for uid in HOSTILE_IDS)
        assert arrived == expected
        for r in f.user_requests():
            query = r.raw_path.partition("?")[2]
            assert query == ("with_groups=all" if ptype == "fortanix" else ""), r.raw_path
        assert not [r for r in f.requests if "_log" in r.path and not r.path.startswith(USERS_PATH[ptype])]


@pytest.mark.parametrize("ptype", ["scim", "fortanix"])
async def test_a_dot_segment_id_fails_that_user_and_sends_nothing(
    ptype, store, make_config, engine_for, monkeypatch
):
    f = fake(ptype)
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(2)
        engine = await engine_for(make_config((ptype, f), **FAST))
        await store.add_targets(ptype, [*ids, ".."])
        report = await engine.sync(ptype)
        assert report.counts["created"] == 2 and report.counts["failed"] == 1, report.counts
        assert len(f.user_requests()) == 2  # nothing was sent for ".."
        error = await store.pool.fetchval("SELECT last_error FROM syncd.targets WHERE user_id = '..'")
        assert "cannot be sent as a URL path segment" in error


async def test_an_answer_for_another_case_of_the_id_is_not_mirrored(
    store, make_config, engine_for, monkeypatch
):
    """Ids are case-sensitive (SCIM ``id`` is caseExact, RFC 7643 §3.1): a
    provider answering user ``CASE`` when asked for ``case`` fails that user."""
    f = fake("scim")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(2)
        f.users["case"] = with_id("scim", f.dialect.make_user(7), "CASE")
        engine = await engine_for(make_config(("corp", f), **FAST))
        await store.add_targets("corp", [*ids, "case"])
        report = await engine.sync("corp")
        assert report.counts["created"] == 2 and report.counts["failed"] == 1, report.counts
        mirrored = {r["user_id"] for r in await store.pool.fetch("SELECT user_id FROM syncd.users")}
        assert mirrored == set(ids)
        error = await store.pool.fetchval("SELECT last_error FROM syncd.targets WHERE user_id = 'case'")
        assert "'CASE'" in error
