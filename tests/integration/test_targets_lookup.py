"""`syncd targets add --username/--email`: the provider's search finds the
one user meant, checked on our side too (a server that ignores the filter
answers everyone); none, several, or a type that can't search is an error
that says so, and nothing is added."""

from __future__ import annotations

import pytest

from syncd.errors import ConfigError
from syncd.providers.search import UserNotFound
from syncd.testing.dialects import fake
from tests.integration.conftest import TOKEN_ENV
from tests.integration.test_cli import syncd


def username_and_email(f, uid: str) -> tuple[str, str]:
    doc = f.users[uid]
    if f.dialect.type == "zitadel":
        user = doc["user"]
        return user["username"], user["human"]["email"]["email"]
    if f.dialect.type == "wacht":
        return doc["username"], doc["primary_email_address"]["email"]
    primary = next(e["value"] for e in doc["emails"] if e.get("primary"))
    return doc["userName"], primary


@pytest.mark.parametrize("provider", ["zitadel", "scim", "webex", "wacht"], indirect=True)
async def test_a_user_is_found_by_user_name_and_by_email(provider, make_config, engine_for):
    ids = provider.seed(12)
    engine = await engine_for(make_config(("corp", provider)))
    connection = engine.runtime("corp").connection
    username, email = username_and_email(provider, ids[4])
    assert await connection.find_user("username", username.upper()) == ids[4]
    assert await connection.find_user("email", email.upper()) == ids[4]
    with pytest.raises(UserNotFound, match="no user has the user name 'nobody'"):
        await connection.find_user("username", "nobody")


async def test_a_server_that_ignores_the_filter_still_yields_only_the_user_meant(
    make_config, engine_for, monkeypatch
):
    f = fake("scim")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(12)
        f.listing.filter_ignored = True
        engine = await engine_for(make_config(("corp", f)))
        username, _ = username_and_email(f, ids[7])
        assert await engine.runtime("corp").connection.find_user("username", username) == ids[7]


async def test_two_users_with_one_email_are_ambiguous(make_config, engine_for, monkeypatch):
    f = fake("scim")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(5)
        f.users[ids[1]]["emails"] = f.users[ids[0]]["emails"]
        engine = await engine_for(make_config(("corp", f)))
        _, email = username_and_email(f, ids[0])
        with pytest.raises(UserNotFound, match=r"2 users have the email .*ambiguous"):
            await engine.runtime("corp").connection.find_user("email", email)


async def test_fortanix_cannot_search_and_says_so(make_config, engine_for, monkeypatch):
    f = fake("fortanix")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        engine = await engine_for(make_config(("corp", f)))
        with pytest.raises(ConfigError, match="cannot look users up by user name; give the user id"):
            await engine.runtime("corp").connection.find_user("username", "ada")


async def test_syncd_targets_add_by_username_adds_one_or_nothing(tmp_path, store, db_url):
    f = fake("scim")
    async with f:
        ids = f.seed(6)
        cfg = tmp_path / "syncd.toml"
        cfg.write_text(
            f"""
[database]
url = "{db_url}"

[[providers]]
name = "corp"
type = "scim"
base_url = "{f.url}"
token_env = "{TOKEN_ENV}"
"""
        )
        env = {TOKEN_ENV: f.token}
        username, _ = username_and_email(f, ids[2])
        rc, out, err = await syncd(
            "targets", "add", "--provider", "corp", "--username", username, "--config", str(cfg), env=env
        )
        assert rc == 0, err
        assert f"target {ids[2]} added" in out
        rc, out, err = await syncd(
            "targets",
            "add",
            "--provider",
            "corp",
            "--email",
            "nobody@example.com",
            "--config",
            str(cfg),
            env=env,
        )
        assert rc == 1 and "no user has the email 'nobody@example.com'; nothing was added" in err
        assert set(await store.target_sources("corp")) == {ids[2]}
