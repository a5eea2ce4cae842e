"""Wacht, Fortanix DSM, Webex and generic SCIM 2: every documented field
mapped (or deliberately kept raw), their error shapes, auth flows and the
whole sync path against their fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.errors import MalformedResponse
from syncd.model.identity import Email
from syncd.providers import fortanix, scim, wacht, webex
from syncd.testing.dialects import fake
from tests.integration.conftest import TOKEN_ENV

FIXTURES = Path(__file__).parent.parent / "fixtures"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


# -- Wacht -------------------------------------------------------------------------------
def test_wacht_user_shape_maps_every_field() -> None:
    ident = wacht.normalize(load("wacht-user.json"))
    assert ident.user_id == "7310295864387584"
    assert ident.username == "jdoe"
    assert (ident.given_name, ident.family_name, ident.display_name) == ("Jane", "Doe", "Jane Doe")
    assert ident.email == "jane@acme.com" and ident.email_verified is True
    assert ident.emails == (
        Email(value="jane@acme.com", primary=True, verified=True),
        Email(value="jane.doe@home.example", primary=False, verified=False),
    )
    assert ident.phone == "5550100"
    assert ident.active is True and ident.state == "active" and ident.kind == "human"
    assert ident.source_version is None  # Wacht has no ETag: the content is diffed
    # kept raw: presence, segments, metadata, flags
    assert ident.raw["availability"] == "available"
    assert ident.raw["segments"][0]["name"] == "beta-testers"
    assert ident.raw["public_metadata"] == {"department": "engineering", "cost_center": 42}


def test_wacht_scim_shape_maps_like_scim_and_inactive_is_disabled_not_deleted() -> None:
    doc = load("wacht-scim-user.json")
    ident = wacht.normalize(doc)
    assert ident.user_id == "7310295864387584" and ident.username == "jdoe"
    assert ident.display_name == "Jane Doe" and ident.given_name == "Jane" and ident.family_name == "Doe"
    assert ident.email == "jane@acme.com" and ident.active is True
    assert ident.updated_at == datetime(2026, 1, 15, 17, 40, 3, tzinfo=UTC)
    doc["active"] = False
    assert wacht.normalize(doc).active is False
    assert wacht.normalize(doc).state == "inactive"


def test_wacht_both_error_shapes() -> None:
    assert wacht.error_detail((FIXTURES / "wacht-error-documented.json").read_bytes()) == "User not found"
    assert (
        wacht.error_detail((FIXTURES / "wacht-error-scim.json").read_bytes()) == "User not found (noTarget)"
    )


# -- Fortanix ----------------------------------------------------------------------------
def test_fortanix_user_maps_every_field() -> None:
    ident = fortanix.normalize(load("fortanix-user.json"))
    assert ident.user_id == "b6480ec0-df2e-4b5a-9d1e-1c2f3a4b5c6d"
    assert ident.username == ident.email == "ada@example.com"
    assert ident.email_verified is True
    assert (ident.given_name, ident.family_name, ident.display_name) == ("Ada", "Lovelace", "Ada Lovelace")
    assert ident.active is True and ident.state == "enabled"
    assert ident.raw["groups"] and ident.raw["mfa_devices"][0]["type"] == "Fido2"
    assert ident.raw["last_logged_in_at"] == "20260301T120501Z"


@pytest.mark.parametrize(
    ("roles", "state", "active"),
    [(["ACCOUNTMEMBER", "PENDINGINVITE"], "pending_invite", False), (["ACCOUNTAUDITOR"], "disabled", False)],
)
def test_fortanix_state_flags_in_account_role(roles, state, active) -> None:
    doc = load("fortanix-user.json") | {"account_role": roles}
    ident = fortanix.normalize(doc)
    assert (ident.state, ident.active) == (state, active)


def test_fortanix_compact_timestamps_parse() -> None:
    from syncd.timeutil import parse_compact

    assert parse_compact("20170509T070912Z") == datetime(2017, 5, 9, 7, 9, 12, tzinfo=UTC)


def test_fortanix_errors_are_plain_text() -> None:
    assert fortanix.error_detail(b"user not found") == "user not found"


# -- Webex -------------------------------------------------------------------------------
def test_webex_user_maps_core_enterprise_and_cisco_fields() -> None:
    ident = webex.normalize(load("webex-user.json"))
    assert ident.user_id == "3426a8e3-d414-4bf0-a493-4f6787632a13"
    assert ident.username == "user1@example.com"
    assert ident.display_name == "Mr. Jonathan Jane Joestar, III"
    assert (ident.given_name, ident.family_name) == ("Jonathan", "Joestar")
    assert ident.email == "user1@example.com"  # the primary one, not the first
    assert [e.value for e in ident.emails] == ["user1@example.home.com", "user1@example.com"]
    assert ident.phone == "400 123 1234"
    assert ident.locale == "en_US" and ident.active is True
    assert ident.state == "active"  # Cisco accountStatus
    assert ident.source_version == 'W/"76678575420"'
    assert ident.updated_at == datetime(2023, 1, 11, 17, 38, 31, 605000, tzinfo=UTC)
    enterprise = ident.raw[scim.ENTERPRISE]
    assert enterprise["department"] == "department 789" and enterprise["manager"]["value"]


def test_webex_account_status_may_be_a_string() -> None:
    doc = load("webex-user.json")
    doc[webex.CISCO]["accountStatus"] = "pending"
    assert webex.normalize(doc).state == "pending"


def test_webex_error_shapes_and_empty_429() -> None:
    assert webex.error_detail((FIXTURES / "webex-error-scim.json").read_bytes()) == "User not found"
    general = webex.error_detail((FIXTURES / "webex-error-general.json").read_bytes())
    assert general.startswith("The requested resource could not be found.")
    assert "ROUTER_0A1B2C3D" in general
    assert webex.error_detail(b"") is None


def test_webex_reference_page_body_is_malformed_json() -> None:
    from syncd.jsonutil import parse_body

    with pytest.raises(MalformedResponse):
        parse_body((FIXTURES / "webex-user-broken.txt").read_bytes())


# -- generic SCIM ---------------------------------------------------------------------------
def test_scim_primary_email_rule_and_missing_id() -> None:
    doc = {"id": "1", "userName": "u", "emails": [{"value": "a@x"}, {"value": "b@x", "primary": True}]}
    assert scim.normalize(doc).email == "b@x"
    assert scim.normalize({"id": "1", "emails": [{"value": "a@x"}]}).email == "a@x"
    assert scim.normalize({"id": "1"}).active is True  # active absent = true
    with pytest.raises(MalformedResponse):
        scim.normalize({"userName": "no id"})


# -- the whole path against each fake ---------------------------------------------------------
@pytest.mark.parametrize("ptype", ["wacht", "fortanix", "webex", "scim"])
async def test_each_provider_syncs_creates_updates_and_deletes(
    ptype, store, make_config, engine_for, monkeypatch
):
    f = fake(ptype)
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(12)
        engine = await engine_for(make_config((ptype, f)))
        await store.add_targets(ptype, ids)
        report = await engine.sync(ptype)
        assert report.counts["created"] == 12, report.counts
        f.modify(ids[0])
        del f.users[ids[1]]
        await store.make_due(ptype, None)
        report = await engine.sync(ptype)
        assert (report.counts["updated"], report.counts["deleted"], report.counts["unchanged"]) == (1, 1, 10)
        types = [r["type"] for r in await store.pool.fetch("SELECT type FROM syncd.outbox ORDER BY seq")]
        assert types.count("user.created") == 12 and types[-2:] in (["user.updated", "user.deleted"],)
        row = await store.pool.fetchrow("SELECT * FROM syncd.users WHERE user_id = $1", ids[0])
        assert "(v1)" in row["display_name"]


@pytest.mark.parametrize("ptype", ["wacht", "fortanix", "webex", "scim"])
async def test_each_provider_reports_a_rejected_token_clearly(
    ptype, store, make_config, engine_for, monkeypatch
):
    f = fake(ptype)
    async with f:
        monkeypatch.setenv(TOKEN_ENV, "wrong")
        ids = f.seed(2)
        cfg = make_config((ptype, f))
        monkeypatch.setenv(TOKEN_ENV, "wrong")
        engine = await engine_for(cfg)
        await store.add_targets(ptype, ids)
        report = await engine.sync(ptype)
        assert report.status == "failed" and "credentials rejected" in report.error
        assert ptype in report.error or "status=40" in report.error
        assert await store.pool.fetchval("SELECT count(*) FROM syncd.users") == 0


async def test_fortanix_token_expiring_mid_run_is_renewed_once(store, make_config, engine_for, monkeypatch):
    f = fake("fortanix")
    async with f:
        ids = f.seed(30)
        engine = await engine_for(make_config(("dsm", f), concurrency=1, sync={"batch_size": 10}))
        await store.add_targets("dsm", ids)
        await engine.sync("dsm", max_batches=1)
        f.expire_tokens()  # the session idled out
        report = await engine.sync("dsm")
        assert report.counts["created"] == 20 and report.counts["failed"] == 0
        assert sum(1 for r in f.requests if r.path == "/sys/v1/session/auth") == 2
        assert sum(1 for r in f.requests if r.status == 401) == 1


async def test_fortanix_wrong_api_key_fails_fast_naming_the_provider(
    store, make_config, engine_for, monkeypatch
):
    f = fake("fortanix")
    async with f:
        ids = f.seed(50)
        cfg = make_config(("dsm-prod", f))
        monkeypatch.setenv(TOKEN_ENV, "not-the-key")
        engine = await engine_for(cfg)
        await store.add_targets("dsm-prod", ids)
        report = await engine.sync("dsm-prod")
        assert report.status == "failed"
        assert "credentials rejected" in report.error and "Invalid API key" in report.error
        auths = [r for r in f.requests if r.path == "/sys/v1/session/auth"]
        assert len(auths) <= 3  # failed fast: no storm against the auth endpoint
        assert not [r for r in f.requests if r.path.startswith("/sys/v1/users/")]


async def test_webex_errors_are_logged_with_the_tracking_id(
    store, make_config, engine_for, monkeypatch, logs
):
    f = fake("webex")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(2)
        engine = await engine_for(make_config(f, max_attempts=1))
        await store.add_targets("webex", ids)
        f.inject("500", times=None, only_path=ids[0])
        await engine.sync("webex")
        [failed] = [e for e in logs if e["event"] == "user.fetch_failed"]
        assert failed["tracking_id"] == "ROUTER_FAKE-0000" and failed["status"] == 500


async def test_webex_malformed_reference_body_is_a_per_user_error(
    store, make_config, engine_for, monkeypatch, logs
):
    """The reference page's own example (a stray brace) must not crash or half-write."""
    f = fake("webex")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(4)
        engine = await engine_for(make_config(f))
        await store.add_targets("webex", ids)
        await engine.sync("webex")
        before = await store.pool.fetchrow(
            "SELECT *, xmin::text AS v FROM syncd.users WHERE user_id = $1", ids[1]
        )
        for uid in ids:
            f.modify(uid)
        broken = (FIXTURES / "webex-user-broken.txt").read_bytes()
        f.inject("body", times=None, only_path=ids[1], body=broken, content_type="application/scim+json")
        await store.make_due("webex", None)

        report = await engine.sync("webex")

        assert report.counts["updated"] == 3 and report.counts["failed"] == 1
        after = await store.pool.fetchrow(
            "SELECT *, xmin::text AS v FROM syncd.users WHERE user_id = $1", ids[1]
        )
        assert after == before
        target = await store.pool.fetchrow("SELECT * FROM syncd.targets WHERE user_id = $1", ids[1])
        assert "not valid JSON" in target["last_error"]
        [failed] = [e for e in logs if e["event"] == "user.fetch_failed"]
        assert failed["provider"] == "webex" and failed["status"] == 200 and failed["user_id"] == ids[1]


async def test_the_webex_refresh_token_flow(store, make_config, engine_for, monkeypatch):
    f = fake("webex")
    async with f:
        ids = f.seed(3)
        monkeypatch.setenv("WEBEX_SECRET", f.token)
        monkeypatch.setenv("WEBEX_REFRESH", "refresh-abc")
        cfg = make_config(
            f,
            token_env=None,
            client_id="C123",
            client_secret_env="WEBEX_SECRET",
            refresh_token_env="WEBEX_REFRESH",
        )
        engine = await engine_for(cfg)
        await store.add_targets("webex", ids)
        report = await engine.sync("webex")
        assert report.counts["created"] == 3
        assert [r.path for r in f.requests].count("/v1/access_token") == 1


async def test_no_secret_from_the_wacht_body_reaches_the_mirror_outbox_or_logs(
    store, make_config, engine_for, monkeypatch, logs
):
    f = fake("wacht")
    doc = load("wacht-user.json")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        f.users[doc["id"]] = doc
        engine = await engine_for(make_config(f, redact_fields=["cost_center"]))
        await store.add_targets("wacht", [doc["id"]])
        report = await engine.sync("wacht")
        assert report.counts["created"] == 1
        doc2 = json.loads(json.dumps(doc))
        doc2["first_name"] = "Janet"
        f.users[doc["id"]] = doc2
        await store.make_due("wacht", None)
        assert (await engine.sync("wacht")).counts["updated"] == 1

        dumped = json.dumps(
            [dict(r) for r in await store.pool.fetch("SELECT raw, emails FROM syncd.users")]
            + [r["payload"] for r in await store.pool.fetch("SELECT payload FROM syncd.outbox")],
            default=str,
        )
        dumped += json.dumps(logs, default=str)
        for secret in ("DO-NOT-STORE", "DONOTSTORE", "EXAMPLETOTPSECRET"):
            assert secret not in dumped
        raw = (await store.pool.fetchrow("SELECT raw FROM syncd.users"))["raw"]
        assert "totp_secret" not in raw["user_authenticator"] and "backup_codes" not in raw
        assert "access_token" not in raw["social_connections"][0]
        assert "cost_center" not in raw["public_metadata"]  # a configured redact_fields entry
        assert raw["social_connections"][0]["provider"] == "x_oauth"  # the rest is kept


@pytest.mark.parametrize("ptype", ["wacht", "fortanix", "webex", "scim"])
async def test_listing_pages_through_every_user(ptype, make_config, engine_for, monkeypatch):
    """list_ids follows each API's paging (SCIM startIndex, Fortanix start=<last id>)."""
    f = fake(ptype)
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(230)  # more than two pages of 100
        engine = await engine_for(make_config((ptype, f)))
        listed = [uid async for uid in engine.runtime(ptype).connection.list_ids()]
        assert sorted(listed) == sorted(ids)


# -- check(): an authenticated read of the right shape (issue 13, item 6) -------------------------
@pytest.mark.parametrize("ptype", ["zitadel", "wacht", "fortanix", "webex", "scim"])
async def test_check_proves_a_read_and_any_404_or_wrong_body_fails_naming_the_url(
    ptype, make_config, engine_for, monkeypatch
):
    from syncd.providers.base import CheckFailed

    f = fake(ptype)
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        f.seed(2)
        rt = (await engine_for(make_config((ptype, f), max_attempts=1))).runtime(ptype)
        proof = await rt.connection.check()
        method = "POST" if ptype == "zitadel" else "GET"  # ZITADEL's ListUsers is a POST search
        assert proof.startswith(f"{method} {f.url}/"), proof

        for kind, kw in (("html", {"status": 404}), ("404", {}), ("body", {"body": b'{"ok": true}'})):
            f.inject(kind, times=None, **kw)
            with pytest.raises(CheckFailed) as failed:
                await rt.connection.check()
            assert failed.value.url.startswith(f"{f.url}/") and failed.value.method == method
            assert not failed.value.credentials_rejected
            f.clear_faults()
