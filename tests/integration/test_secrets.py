"""Secrets never stored, whatever their spelling; error text never carries one.

End to end: real fake providers over HTTP on 127.0.0.1, the Engine, a real
PostgreSQL; the tables ``syncd_reader`` can read are queried for the values.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from syncd import jsonutil
from syncd.testing.dialects import fake
from syncd.testing.dialects.zitadel import ZitadelDialect
from syncd.testing.fake import FakeProvider
from tests.integration.conftest import FAST, TOKEN_ENV
from tests.unit.test_redact import SPELLINGS as REDACT_SPELLINGS

#: spellings exact-name matching let through (issue 13, item 10), each with a
#: value that must never be stored
SPELLINGS = REDACT_SPELLINGS[:10]


def _leak(n: int, key: str) -> str:
    return f"LEAK-{n}-{key.upper()}-DO-NOT-STORE"


def _with_secret(doc: dict[str, Any], n: int, key: str) -> dict[str, Any]:
    """``doc`` holding one secret key spelled ``key``, at a depth that varies
    with ``n`` (top level, in an object, in a list of objects), and nothing else
    secret: the body scan that guards the strip must find this spelling alone."""
    doc = copy.deepcopy(doc)
    value: Any = [_leak(n, key), _leak(n, key) + "-2"] if key == "backupCodes" else _leak(n, key)
    if n % 3 == 0:
        doc[key] = value
    elif n % 3 == 1:
        doc.setdefault("urn:example:custom", {})["factors"] = {key: value, "kind": "totp"}
    else:
        doc["x509Certificates"] = [{"display": "device", "props": [{"name": "a", key: value}]}]
    return doc


async def test_no_secret_key_in_any_spelling_reaches_the_mirror_or_the_outbox(
    store, make_config, engine_for, monkeypatch
):
    f = fake("scim")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(len(SPELLINGS))
        for n, (uid, key) in enumerate(zip(ids, SPELLINGS, strict=True)):
            f.users[uid] = _with_secret(f.users[uid], n, key)
        # a configured redact_fields entry matches any spelling too (SCIM's costCenter)
        engine = await engine_for(make_config(f, redact_fields=["cost_center"], **FAST))
        await store.add_targets("scim", ids)
        assert (await engine.sync("scim")).counts["created"] == len(ids)

        for uid in ids:  # an update: the event carries before, after and the patch
            f.modify(uid)
        await store.make_due("scim", None)
        assert (await engine.sync("scim")).counts["updated"] == len(ids)

    raw = await store.pool.fetch("SELECT user_id, raw::text AS raw FROM syncd.users")
    payloads = await store.pool.fetch("SELECT payload::text AS payload FROM syncd.outbox")
    assert len(raw) == len(ids) and len(payloads) == 2 * len(ids)
    stored = "\n".join([r["raw"] for r in raw] + [p["payload"] for p in payloads])
    assert "DO-NOT-STORE" not in stored
    assert "cc-7" not in stored  # costCenter's value
    for key in SPELLINGS:
        assert f'"{key}"' not in stored
    # what is not secret stays: the rest of each document, its siblings
    rows = {r["user_id"]: json.loads(r["raw"]) for r in raw}
    assert rows[ids[1]]["urn:example:custom"]["factors"] == {"kind": "totp"}
    assert rows[ids[2]]["x509Certificates"] == [{"display": "device", "props": [{"name": "a"}]}]
    assert rows[ids[0]]["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] == "R&D"


async def test_wacht_documents_lose_camel_case_secrets_too(store, make_config, engine_for, monkeypatch):
    f = fake("wacht")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        [uid] = f.seed(1)  # Wacht's own shape, with snake_case secrets already
        doc = f.users[uid]
        doc["user_authenticator"]["totpSecret"] = "CAMEL-TOTP-DO-NOT-STORE"
        doc["social_connections"][0]["accessToken"] = "CAMEL-ACCESS-DO-NOT-STORE"
        doc["segments"][0]["Refresh-Token"] = "HYPHEN-REFRESH-DO-NOT-STORE"
        engine = await engine_for(make_config(f, **FAST))
        await store.add_targets("wacht", [uid])
        assert (await engine.sync("wacht")).counts["created"] == 1
    stored = await store.pool.fetchval(
        "SELECT string_agg(raw::text, '') FROM syncd.users"
    ) + await store.pool.fetchval("SELECT string_agg(payload::text, '') FROM syncd.outbox")
    assert "DO-NOT-STORE" not in stored and "DONOTSTORE" not in stored


# -- error text (issue 13, item 11) ------------------------------------------------------------

TOKEN = "tok-Echoed-3f9a1c7e5b2d"
REFRESH = "RT-LEAK-8b1e4d"
CLIENT_SECRET = "CS-LEAK-77aa19"
TOTP = "JBSWY3DPEHPK3PXP"
SECRETS = (TOKEN, REFRESH, CLIENT_SECRET, TOTP)


class EchoingZitadel(ZitadelDialect):
    """A hostile ZITADEL: its error answers echo what it was sent, and one
    200 answer is cut short right after a TOTP secret."""

    def routes(self, fake: FakeProvider) -> list[web.RouteDef]:
        async def get_user(request: web.Request) -> web.Response:
            uid = request.match_info["user_id"]
            sent = request.headers.get("Authorization", "")
            if uid.startswith("echo401"):
                return _error(401, f"token invalid: {sent}")
            if uid.startswith("echo500"):
                body = {
                    "code": 13,
                    "message": f"upstream failed for Authorization: {sent}; refresh_token={REFRESH}",
                }
                return web.json_response(body, status=500)
            if uid.startswith("echo400"):
                upstream = jsonutil.dumps({"clientSecret": CLIENT_SECRET, "grant": "client_credentials"})
                return _error(400, f"bad request: {upstream}")
            if uid.startswith("trunc"):
                cut = f'{{"totp_secret":"{TOTP}","user":{{"userId":"{uid}","state":"USER_'.encode()
                return web.Response(body=cut, content_type="application/json")
            if not fake.authorized(request):
                return fake.error(401, "Errors.Token.Invalid (AUTH-7fs1e)")
            return fake.user_response(uid)

        return [web.get("/v2/users/{user_id}", get_user)]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"code": 3, "message": message, "details": []}, status=status)


async def test_echoed_tokens_and_cut_short_bodies_never_reach_last_error_runs_logs_or_status(
    tmp_path, store, make_config, engine_for, logs, db_url
):
    f = FakeProvider(dialect=EchoingZitadel(), token=TOKEN)
    async with f:
        good = f.seed(3)
        hostile = ["echo500-1", "echo400-1", "trunc-1"]
        cfg = make_config(f, **FAST)
        engine = await engine_for(cfg)
        await store.add_targets("zitadel", good + hostile)
        report = await engine.sync("zitadel")
        assert report.counts["created"] == 3 and report.counts["failed"] == 3

        # a 401 whose body echoes the bearer token stops the pass: its error is stored too
        await store.add_targets("zitadel", ["echo401-1"])
        report = await engine.sync("zitadel")
        assert report.status == "failed"

    targets = await store.pool.fetch(
        "SELECT user_id, last_error FROM syncd.targets WHERE last_error IS NOT NULL ORDER BY user_id"
    )
    runs = await store.pool.fetch("SELECT error FROM syncd.sync_runs WHERE error IS NOT NULL")
    errors = {r["user_id"]: r["last_error"] for r in targets}
    # the errors are there, and say what happened ...
    assert set(hostile) <= set(errors)
    assert "status=500" in errors["echo500-1"] and "[redacted]" in errors["echo500-1"]
    assert "status=400" in errors["echo400-1"] and "[redacted]" in errors["echo400-1"]
    assert "not valid JSON" in errors["trunc-1"] and '"totp_secret":"[redacted]' in errors["trunc-1"]
    assert runs and "credentials rejected" in runs[-1]["error"]
    # ... with no secret in them, nor in any log line
    shown = json.dumps([*errors.values(), *(r["error"] for r in runs), logs], default=str)
    for secret in SECRETS:
        assert secret not in shown, secret

    out = await _syncd_status(tmp_path, db_url, f.url)
    assert "echo500-1" in out  # the failed targets are listed ...
    for secret in SECRETS:
        assert secret not in out, secret  # ... without a secret


async def _syncd_status(tmp_path: Path, db_url: str, url: str) -> str:
    path = tmp_path / "status.toml"
    path.write_text(
        f"""
[database]
url = "{db_url}"
[[providers]]
name = "zitadel"
type = "zitadel"
base_url = "{url}"
token_env = "{TOKEN_ENV}"
"""
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        "status",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, TOKEN_ENV: TOKEN},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode() + err.decode()
