"""``syncd check`` proves an authenticated read of the right shape for every
provider (issue 13, item 6), run as the real CLI against the fakes: a bad
token, a wrong path, a wrong connection_id or org_id, a 404 or a body of the
wrong shape each fail, and the line names the URL tried."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from syncd.cli import EXIT_CONFIG
from syncd.testing.dialects import fake
from syncd.testing.fake import FakeProvider
from tests.integration.conftest import TOKEN_ENV, free_port
from tests.integration.test_cli import syncd

TYPES = ["zitadel", "wacht", "fortanix", "webex", "scim"]


@pytest.fixture
async def fakes(monkeypatch) -> AsyncIterator[dict[str, FakeProvider]]:
    """One running fake of each provider type, a few users each."""
    started = {ptype: fake(ptype) for ptype in TYPES}
    for f in started.values():
        await f.start()
        f.seed(3)
    monkeypatch.setenv(TOKEN_ENV, started["scim"].token)
    try:
        yield started
    finally:
        for f in started.values():
            await f.stop()


def write_config(tmp_path: Path, db_url: str, providers: list[dict[str, Any]]) -> str:
    lines = [f"[database]\nurl = {json.dumps(db_url)}\n"]
    for p in providers:
        lines.append("[[providers]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in p.items() if v is not None]
        lines.append("")
    path = tmp_path / "syncd.toml"
    path.write_text("\n".join(lines))
    return str(path)


def provider(f: FakeProvider, **over: Any) -> dict[str, Any]:
    return {**f.provider_config(f.dialect.type, token_env=TOKEN_ENV), **over}


def line_of(out: str, name: str) -> str:
    [line] = [ln for ln in out.splitlines() if ln.startswith(f"provider {name} (")]
    return line


async def test_a_good_config_passes_naming_what_it_read(tmp_path, store, db_url, fakes):
    cfg = write_config(tmp_path, db_url, [provider(f) for f in fakes.values()])
    rc, out, err = await syncd("check", "--config", cfg)
    assert rc == 0, out + err
    for ptype, f in fakes.items():
        line = line_of(out, ptype)
        assert "credentials accepted" in line and f.url in line, line
    assert "GET " in line_of(out, "scim") and "ListResponse" in line_of(out, "scim")
    assert f"{fakes['fortanix'].url}/sys/v1/users?limit=1" in line_of(out, "fortanix")
    assert f"POST {fakes['zitadel'].url}/v2/users" in line_of(out, "zitadel")
    assert "ListUsers" in line_of(out, "zitadel")


async def test_a_bad_token_fails_every_provider_as_credentials_rejected(tmp_path, store, db_url, fakes):
    cfg = write_config(tmp_path, db_url, [provider(f) for f in fakes.values()])
    rc, out, err = await syncd("check", "--config", cfg, env={TOKEN_ENV: "wrong-token"})
    assert rc == 1, out + err
    for ptype, f in fakes.items():
        line = line_of(out, ptype)
        assert "FAILED: credentials rejected" in line, line
        if ptype == "fortanix":  # a session flow's refusal names the session endpoint
            assert line.endswith(f"(POST {f.url}/sys/v1/session/auth)"), line
        elif ptype == "zitadel":  # ListUsers is a POST search
            assert line.endswith(f"(POST {f.url}/v2/users)"), line
        else:
            assert f"(GET {f.url}/" in line, line
    assert "wrong-token" not in out + err


async def test_a_refused_client_secret_names_the_token_endpoint(tmp_path, store, db_url, fakes):
    f = fakes["zitadel"]
    cfg = write_config(
        tmp_path,
        db_url,
        [provider(f, token_env=None, client_id="syncd-client", client_secret_env=TOKEN_ENV)],
    )
    rc, out, err = await syncd("check", "--config", cfg)
    assert rc == 0, out + err
    rc, out, err = await syncd("check", "--config", cfg, env={TOKEN_ENV: "wrong-secret"})
    assert rc == 1, out + err
    line = line_of(out, "zitadel")
    assert "FAILED: credentials rejected" in line and line.endswith(f"(POST {f.url}/oauth/v2/token)"), line
    assert "wrong-secret" not in out + err


async def test_a_wrong_path_in_base_url_fails_naming_the_url(tmp_path, store, db_url, fakes):
    """Every fake answers an unknown path with aiohttp's 404 (text/plain)."""
    cfg = write_config(tmp_path, db_url, [provider(f, base_url=f.url + "/wrong") for f in fakes.values()])
    rc, out, err = await syncd("check", "--config", cfg)
    assert rc == 1, out + err
    for ptype, f in fakes.items():
        # Fortanix's session endpoint comes first; ZITADEL's ListUsers is a POST
        method = "POST" if ptype in ("fortanix", "zitadel") else "GET"
        line = line_of(out, ptype)
        assert "FAILED" in line and "404" in line and f"({method} {f.url}/wrong/" in line, line
        assert "credentials accepted" not in line


async def test_a_wrong_connection_id_or_org_id_fails(tmp_path, store, db_url, fakes):
    wacht, webex = fakes["wacht"], fakes["webex"]
    cfg = write_config(
        tmp_path,
        db_url,
        [provider(wacht, connection_id="7309876543210001"), provider(webex, org_id="not-our-org")],
    )
    rc, out, err = await syncd("check", "--config", cfg)
    assert rc == 1, out + err
    assert "FAILED" in line_of(out, "wacht") and "/scim/v2/7309876543210001/Users" in line_of(out, "wacht")
    assert "FAILED" in line_of(out, "webex") and "/identity/scim/not-our-org/v2/Users" in line_of(
        out, "webex"
    )


async def test_the_providers_own_404_on_the_read_fails_too(tmp_path, store, db_url, fakes):
    """A 404 is never "the credentials work", even the provider's own."""
    f = fakes["scim"]
    f.inject("404", times=None)
    cfg = write_config(tmp_path, db_url, [provider(f)])
    rc, out, err = await syncd("check", "--config", cfg)
    assert rc == 1, out + err
    line = line_of(out, "scim")
    assert "FAILED" in line and "404" in line and f"(GET {f.url}/Users?startIndex=1&count=1)" in line


@pytest.fixture
async def anything_goes() -> AsyncIterator[str]:
    """A server answering every GET 200 ``{"ok": true}``: authenticated or not,
    any path (a catch-all proxy, a health endpoint where base_url points)."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_body_of_the_wrong_shape_fails(tmp_path, store, db_url, fakes, anything_goes):
    providers = [
        {**provider(f), "base_url": anything_goes}
        for ptype, f in fakes.items()
        if ptype != "fortanix"  # its session endpoint answers no token: checked below
    ]
    cfg = write_config(tmp_path, db_url, providers)
    rc, out, err = await syncd("check", "--config", cfg)
    assert rc == 1, out + err
    for ptype in ("wacht", "webex", "scim"):
        line = line_of(out, ptype)
        assert "FAILED: expected a SCIM ListResponse, got an object with keys ok" in line, line
        assert re.search(rf"\(GET {re.escape(anything_goes)}/\S+\)$", line), line
    assert "FAILED: expected a ZITADEL ListUsers answer" in line_of(out, "zitadel")
    assert f"(POST {anything_goes}/v2/users)" in line_of(out, "zitadel")

    cfg = write_config(tmp_path, db_url, [{**provider(fakes["fortanix"]), "base_url": anything_goes}])
    rc, out, _ = await syncd("check", "--config", cfg)
    assert rc == 1 and "FAILED" in line_of(out, "fortanix") and anything_goes in line_of(out, "fortanix")


def test_syncd_check_refuses_a_base_url_with_user_and_password_in_one_line(tmp_path):
    """The real entry point: it used to pass the config and crash in aiohttp."""
    path = tmp_path / "syncd.toml"
    path.write_text(
        """
[database]
url = "postgresql://127.0.0.1:1/none"
[[providers]]
name = "corp"
type = "zitadel"
base_url = "https://syncd:hunter2@corp.example"
token_env = "CORP_TOKEN"
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "syncd", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CORP_TOKEN": "t0ken-value"},
    )
    assert proc.returncode == EXIT_CONFIG
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "hunter2" not in proc.stderr + proc.stdout
    [line] = [ln for ln in proc.stderr.splitlines() if "base_url" in ln]
    assert line == (
        f"{path}: providers[0] (name='corp').base_url: must not hold credentials (user:password@): "
        "give them by reference (token_env/token_file, or the provider's *_env/*_file keys)"
    )


@pytest.mark.parametrize("ptype", ["scim", "webex"])
async def test_a_server_that_chokes_on_count_still_passes_by_the_plain_list(
    tmp_path, store, db_url, fakes, ptype
):
    """One real SCIM server answers ``?count=N`` with a 500: the check says so
    and proves the read with the list asked for without paging parameters."""
    f = fakes[ptype]
    f.inject("500", only_path="count=1", times=None)
    cfg = write_config(tmp_path, db_url, [provider(f, backoff_base="10ms", backoff_cap="50ms")])
    rc, out, err = await syncd("check", "--config", cfg)
    assert rc == 0, out + err
    line = line_of(out, ptype)
    assert "credentials accepted" in line and "ListResponse" in line, line
    assert "answered 500" in line and "refuses its paging parameters" in line, line
    # a refused token is refused by the other probe too: not hidden by the fallback
    rc, out, err = await syncd("check", "--config", cfg, env={TOKEN_ENV: "wrong-token"})
    assert rc == 1 and "FAILED: credentials rejected" in line_of(out, ptype), out + err


@pytest.mark.parametrize("scheme", ["basic", "header", "client_credentials", "refresh_token"])
async def test_check_proves_each_auth_scheme_and_names_a_refusal(tmp_path, store, db_url, scheme):
    """`syncd check` with each scheme of a generic SCIM server (issue #17):
    accepted with the right secret, "credentials rejected" with a wrong one;
    a refresh token the check rotates is stored for the daemons."""
    secret = "the-right-secret"
    env = {"SCIM_SECRET": secret}
    async with fake("scim") as f:
        f.seed(2)
        over: dict[str, Any] = {"token_env": None}
        if scheme == "basic":
            f.auth, f.basic = "basic", ("sync-bot", secret)
            over |= {"username": "sync-bot", "password_env": "SCIM_SECRET"}
        elif scheme == "header":
            f.auth, f.token = "header", secret
            over |= {"auth_header": "X-API-Key", "token_env": "SCIM_SECRET"}
        else:
            f.oauth.client_secret = secret
            over |= {
                "token_url": f"{f.url}/oauth/token",
                "client_id": "c",
                "client_secret_env": "SCIM_SECRET",
            }
            if scheme == "refresh_token":
                f.oauth.rotate, f.oauth.refresh_tokens = True, {"r0"}
                over["refresh_token_env"] = "SCIM_REFRESH"
                env["SCIM_REFRESH"] = "r0"
        cfg = write_config(tmp_path, db_url, [provider(f, **over)])
        rc, out, err = await syncd("check", "--config", cfg, env=env)
        assert rc == 0, out + err
        assert "credentials accepted" in line_of(out, "scim"), out
        if scheme == "refresh_token":
            token = await store.pool.fetchval(
                "SELECT token FROM syncd.refresh_tokens WHERE provider = 'scim'"
            )
            assert token == f.oauth.issued_refresh[-1]
        rc, out, err = await syncd("check", "--config", cfg, env={**env, "SCIM_SECRET": "wrong-secret"})
        assert rc == 1, out + err
        assert "FAILED: credentials rejected" in line_of(out, "scim"), out
        assert "wrong-secret" not in out + err and secret not in out + err


async def test_check_without_the_database_does_not_rotate_a_refresh_token(tmp_path):
    """A refresh the check made could rotate the token where no daemon reads
    it (the old one revoked): without the database it is not checked."""
    async with fake("scim") as f:
        f.oauth.rotate, f.oauth.refresh_tokens = True, {"r0"}
        over = {
            "token_env": None,
            "token_url": f"{f.url}/oauth/token",
            "client_id": "c",
            "client_secret_env": TOKEN_ENV,
            "refresh_token_env": "SCIM_REFRESH",
        }
        down = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
        cfg = write_config(tmp_path, down, [provider(f, **over)])
        rc, out, err = await syncd("check", "--config", cfg, env={TOKEN_ENV: f.token, "SCIM_REFRESH": "r0"})
        assert rc == 1, out + err
        assert "NOT CHECKED: the database is unreachable" in line_of(out, "scim"), out
        assert f.oauth.grants == [] and f.oauth.refresh_tokens == {"r0"}
