"""Every auth scheme of the ``scim`` and ``webex`` types (issue #17) against
the fakes: HTTP Basic, a token in a custom header, OAuth2 client credentials
(cached, renewed once on 401) and the refresh-token grant, whose rotated
tokens survive the process and are shared by replicas."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from syncd.http.oauth2 import fingerprint
from syncd.testing.dialects import fake
from syncd.testing.fake import FakeProvider
from tests.integration.conftest import FAST, wait_for

SECRET_ENV = "SYNCD_TEST_SECRET"
REFRESH_ENV = "SYNCD_TEST_REFRESH"


async def mirrored(store, provider: str) -> set[str]:
    rows = await store.pool.fetch(
        "SELECT user_id FROM syncd.users WHERE provider = $1 AND deleted_at IS NULL", provider
    )
    return {r["user_id"] for r in rows}


def no_bearer(**over: Any) -> dict[str, Any]:
    return {"token_env": None, **FAST, **over}


async def refused_pass_deletes_no_one(store, engine, provider: str, ids: list[str]) -> str:
    """A pass whose credentials are refused stops, names them, and deletes no one."""
    report = await engine.sync(provider)
    assert report.status == "failed", report
    assert report.error and "credentials" in report.error, report.error
    assert report.counts["deleted"] == 0 and report.counts["not_found"] == 0
    assert await mirrored(store, provider) == set(ids)
    events = await store.pool.fetch("SELECT type FROM syncd.outbox WHERE type = 'user.deleted'")
    assert events == []
    return report.error


# -- HTTP Basic -----------------------------------------------------------------------------
async def test_basic_auth_reads_users_and_a_refused_password_stops_the_pass(
    store, make_config, engine_for, monkeypatch
):
    async with fake("scim", auth="basic", basic=("sync-bot", "pässword:1")) as f:
        ids = f.seed(3)
        monkeypatch.setenv("SCIM_PASSWORD", "pässword:1")
        cfg = make_config(f, **no_bearer(username="sync-bot", password_env="SCIM_PASSWORD"))
        engine = await engine_for(cfg)
        await store.add_targets("scim", ids)
        report = await engine.sync("scim")
        assert report.counts["created"] == 3, report
        assert await mirrored(store, "scim") == set(ids)

        f.basic = ("sync-bot", "rotated-by-the-admin")
        await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
        await refused_pass_deletes_no_one(store, engine, "scim", ids)


# -- a token in a header of its own ----------------------------------------------------------
async def test_a_token_in_a_custom_header_is_sent_without_a_bearer_prefix(
    store, make_config, engine_for, monkeypatch
):
    async with fake("scim", auth="header", api_key_header="X-API-Key") as f:
        ids = f.seed(2)
        engine = await engine_for(make_config(f, auth_header="X-API-Key", **FAST))
        await store.add_targets("scim", ids)
        report = await engine.sync("scim")
        assert report.counts["created"] == 2, report
        assert all(r.status == 200 for r in f.user_requests())
        f.token = "another"  # the admin replaced the API key
        await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
        await refused_pass_deletes_no_one(store, engine, "scim", ids)


# -- OAuth2 client credentials ---------------------------------------------------------------
def client_credentials(f: FakeProvider, monkeypatch, **over: Any) -> dict[str, Any]:
    monkeypatch.setenv(SECRET_ENV, "client-secret/with:odd&chars")
    f.oauth.client_secret = "client-secret/with:odd&chars"
    f.oauth.client_id = "syncd client"
    return no_bearer(
        token_url=f"{f.url}/oauth/token",
        client_id="syncd client",
        client_secret_env=SECRET_ENV,
        **over,
    )


async def test_client_credentials_token_is_cached_and_renewed_once_on_401(
    store, make_config, engine_for, monkeypatch
):
    async with fake("scim") as f:
        ids = f.seed(5)
        cfg = make_config(f, **client_credentials(f, monkeypatch, scope="scim.read", audience="scim-api"))
        engine = await engine_for(cfg)
        await store.add_targets("scim", ids)
        report = await engine.sync("scim")
        assert report.counts["created"] == 5, report
        # one token for five users; RFC 6749 §2.3.1 HTTP Basic by default
        [grant] = f.oauth.grants
        assert (grant.grant_type, grant.client_auth, grant.error) == ("client_credentials", "basic", None)
        assert (grant.scope, grant.audience) == ("scim.read", "scim-api")

        # the server forgets its tokens: the next request's 401 renews it, once
        f.expire_tokens()
        for uid in ids:
            f.modify(uid)
        await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
        report = await engine.sync("scim")
        assert report.counts["updated"] == 5 and report.counts["failed"] == 0, report
        assert len(f.oauth.grants) == 2
        assert sum(1 for r in f.user_requests() if r.status == 401) >= 1


async def test_client_credentials_in_the_form_with_token_auth_post(
    store, make_config, engine_for, monkeypatch
):
    async with fake("scim") as f:
        ids = f.seed(2)
        f.oauth.client_auth = "post"
        engine = await engine_for(make_config(f, **client_credentials(f, monkeypatch, token_auth="post")))
        await store.add_targets("scim", ids)
        report = await engine.sync("scim")
        assert report.counts["created"] == 2, report
        assert [g.client_auth for g in f.oauth.grants] == ["post"]


async def test_a_refused_client_secret_stops_the_pass_and_deletes_no_one(
    store, make_config, engine_for, monkeypatch
):
    async with fake("scim") as f:
        ids = f.seed(3)
        engine = await engine_for(make_config(f, **client_credentials(f, monkeypatch)))
        await store.add_targets("scim", ids)
        assert (await engine.sync("scim")).counts["created"] == 3
        f.oauth.client_secret = "revoked"
        f.expire_tokens()
        await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
        error = await refused_pass_deletes_no_one(store, engine, "scim", ids)
        assert "token endpoint" in error and "invalid_client" in error


# -- refresh tokens, rotated -----------------------------------------------------------------
def webex_refresh(f: FakeProvider, monkeypatch, refresh: str = "refresh-0") -> dict[str, Any]:
    """A Webex integration's refresh grant; the fake rotates and revokes."""
    f.oauth.rotate = True
    f.oauth.refresh_tokens = {refresh}
    monkeypatch.setenv(SECRET_ENV, f.token)
    monkeypatch.setenv(REFRESH_ENV, refresh)
    return no_bearer(client_id="C123", client_secret_env=SECRET_ENV, refresh_token_env=REFRESH_ENV)


async def stored_tokens(store) -> list[tuple[str, str, str]]:
    rows = await store.pool.fetch("SELECT provider, origin, token FROM syncd.refresh_tokens ORDER BY 1, 2")
    return [(r["provider"], r["origin"], r["token"]) for r in rows]


async def test_a_rotated_refresh_token_is_used_by_the_next_process(
    store, make_config, engine_for, monkeypatch
):
    """Two engines one after the other on one database: the second refreshes
    with the token the first was given, not the revoked configured one."""
    async with fake("webex") as f:
        ids = f.seed(3)
        cfg = make_config(f, **webex_refresh(f, monkeypatch))
        await store.add_targets("webex", ids)
        first = await engine_for(cfg)
        assert (await first.sync("webex")).counts["created"] == 3
        await first.close()
        [rotated] = f.oauth.issued_refresh
        assert f.oauth.refresh_tokens == {rotated}  # "refresh-0" is revoked now
        assert await stored_tokens(store) == [("webex", fingerprint("refresh-0"), rotated)]
        # Webex reads the client's credentials in the form
        assert [g.client_auth for g in f.oauth.grants] == ["post"]

        for uid in ids:
            f.modify(uid)
        await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
        second = await engine_for(cfg)
        report = await second.sync("webex")
        assert report.counts["updated"] == 3 and report.status == "ok", report
        assert [g.refresh_token for g in f.oauth.grants] == ["refresh-0", rotated]
        assert [g.error for g in f.oauth.grants] == [None, None]
        assert await stored_tokens(store) == [("webex", fingerprint("refresh-0"), f.oauth.issued_refresh[-1])]


async def test_a_replica_refused_after_a_peer_rotated_rereads_the_stored_token(
    store, make_config, engine_for, monkeypatch
):
    async with fake("webex") as f:
        ids = f.seed(2)
        cfg = make_config(f, **webex_refresh(f, monkeypatch))
        await store.add_targets("webex", ids)
        a, b = await engine_for(cfg), await engine_for(cfg)
        assert (await a.sync("webex")).counts["created"] == 2  # a: refresh-0 -> r1
        await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
        assert (await b.sync("webex")).counts["failed"] == 0  # b reads r1 -> r2
        r1, r2 = f.oauth.issued_refresh
        # both lose their access tokens; a still holds r1, revoked by b's rotation
        f.expire_tokens()
        for uid in ids:
            f.modify(uid)
        await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
        report = await a.sync("webex")
        assert report.counts["updated"] == 2 and report.status == "ok", report
        assert [(g.refresh_token, g.error) for g in f.oauth.grants[2:]] == [
            (r1, "invalid_grant"),  # refused: a re-reads the store...
            (r2, None),  # ... and uses the token b stored
        ]
        assert await stored_tokens(store) == [("webex", fingerprint("refresh-0"), f.oauth.issued_refresh[-1])]


async def test_two_replicas_at_once_rotate_one_at_a_time(store, make_config, engine_for, monkeypatch):
    async with fake("webex") as f:
        ids = f.seed(40)
        f.latency = 0.005  # the passes overlap
        cfg = make_config(f, **webex_refresh(f, monkeypatch))
        await store.add_targets("webex", ids)
        a, b = await engine_for(cfg), await engine_for(cfg)
        ra, rb = await asyncio.gather(a.sync("webex"), b.sync("webex"))
        assert ra.status == rb.status == "ok", (ra, rb)
        assert ra.counts["failed"] == rb.counts["failed"] == 0
        assert ra.counts["created"] + rb.counts["created"] == 40
        assert await mirrored(store, "webex") == set(ids)
        # every rotation was stored: the one refresh token still valid is in the database
        [(_, _, newest)] = await stored_tokens(store)
        assert f.oauth.refresh_tokens == {newest}


async def test_a_new_configured_refresh_token_is_obeyed_over_the_stored_one(
    store, make_config, engine_for, monkeypatch
):
    async with fake("webex") as f:
        ids = f.seed(1)
        cfg = make_config(f, **webex_refresh(f, monkeypatch))
        await store.add_targets("webex", ids)
        first = await engine_for(cfg)
        assert (await first.sync("webex")).counts["created"] == 1
        await first.close()
        # the admin authorizes the integration again: a new refresh token in the secret
        f.oauth.refresh_tokens = {"refresh-new"}
        f.expire_tokens()
        cfg = make_config(f, **webex_refresh(f, monkeypatch, refresh="refresh-new"))
        f.modify(ids[0])
        await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
        second = await engine_for(cfg)
        assert (await second.sync("webex")).counts["updated"] == 1
        assert f.oauth.grants[-1].refresh_token == "refresh-new"
        # the stale descendant of the old one is forgotten
        assert await stored_tokens(store) == [
            ("webex", fingerprint("refresh-new"), f.oauth.issued_refresh[-1])
        ]


async def test_a_revoked_refresh_token_stops_the_pass_and_deletes_no_one(
    store, make_config, engine_for, monkeypatch
):
    async with fake("webex") as f:
        ids = f.seed(2)
        engine = await engine_for(make_config(f, **webex_refresh(f, monkeypatch)))
        await store.add_targets("webex", ids)
        assert (await engine.sync("webex")).counts["created"] == 2
        f.oauth.refresh_tokens = {"only-the-admin-has-this"}
        f.expire_tokens()
        await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
        error = await refused_pass_deletes_no_one(store, engine, "webex", ids)
        assert "token endpoint" in error
        # one refused refresh, and the one re-read found nothing newer: no retry storm
        assert [g.error for g in f.oauth.grants] == [None, "invalid_grant"]


async def test_scim_refresh_grant_with_basic_client_auth_rotates_too(
    store, make_config, engine_for, monkeypatch
):
    async with fake("scim") as f:
        ids = f.seed(2)
        f.oauth.rotate = True
        f.oauth.refresh_tokens = {"r0"}
        monkeypatch.setenv(REFRESH_ENV, "r0")
        cfg = make_config(f, **client_credentials(f, monkeypatch, refresh_token_env=REFRESH_ENV))
        await store.add_targets("scim", ids)
        engine = await engine_for(cfg)
        assert (await engine.sync("scim")).counts["created"] == 2
        [grant] = f.oauth.grants
        assert (grant.grant_type, grant.client_auth, grant.refresh_token) == ("refresh_token", "basic", "r0")
        assert await stored_tokens(store) == [("scim", fingerprint("r0"), f.oauth.issued_refresh[-1])]


async def test_the_reader_role_cannot_read_refresh_tokens(store):
    await store.pool.execute(
        "INSERT INTO syncd.refresh_tokens (provider, origin, token) VALUES ('webex', 'o', 'secret')"
    )
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE syncd_reader")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM syncd.refresh_tokens")


async def test_the_token_endpoint_is_unreachable_the_pass_fails_and_deletes_no_one(
    store, make_config, engine_for, monkeypatch
):
    async with fake("scim") as f:
        ids = f.seed(2)
        over = client_credentials(f, monkeypatch)
        engine = await engine_for(make_config(f, **over))
        await store.add_targets("scim", ids)
        assert (await engine.sync("scim")).counts["created"] == 2
    # the fake is gone: nothing can be read, and no one is deleted for it
    await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now()")
    report = await engine.sync("scim")
    assert report.counts["deleted"] == 0 and report.counts["created"] == 0
    assert await mirrored(store, "scim") == set(ids)


@pytest.mark.parametrize("ptype", ["scim", "webex"])
async def test_a_token_env_is_still_a_bearer_token(ptype, store, make_config, engine_for):
    async with fake(ptype) as f:
        ids = f.seed(1)
        engine = await engine_for(make_config(f, **FAST))
        await store.add_targets(ptype, ids)
        assert (await engine.sync(ptype)).counts["created"] == 1
        assert f.oauth.grants == []


async def test_one_rotation_at_a_time_per_provider_across_connections(store, db_url):
    """The rotation lock: a second replica's refresh waits for the first's
    (and then reads the token it saved); another provider's does not wait."""
    from syncd.store import Store

    peer = await Store.connect(db_url, min_size=1, max_size=2)
    entered, release = asyncio.Event(), asyncio.Event()
    holder: asyncio.Task[None] | None = None
    waiter: asyncio.Task[str | None] | None = None
    try:

        async def first() -> None:
            async with store.refresh_token_rotation("webex", "o") as slot:
                entered.set()
                await release.wait()
                await slot.save("r1")

        async def second() -> str | None:
            async with peer.refresh_token_rotation("webex", "o") as slot:
                return await slot.load()

        holder = asyncio.create_task(first())
        await asyncio.wait_for(entered.wait(), 5)
        waiter = asyncio.create_task(second())
        # another provider rotates meanwhile: not held up
        async with peer.refresh_token_rotation("scim", "o") as other:
            assert await other.load() is None
        # the waiter waits on the lock (PostgreSQL says so), not on anything else
        await wait_for(
            lambda: store.pool.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            timeout=5,
        )
        assert not waiter.done()
        release.set()
        await asyncio.wait_for(holder, 5)
        assert await asyncio.wait_for(waiter, 5) == "r1"
    finally:
        release.set()
        await asyncio.gather(*(t for t in (holder, waiter) if t is not None), return_exceptions=True)
        await peer.close()
