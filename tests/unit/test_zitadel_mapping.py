"""ZITADEL documents map to the normalized record, field by field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.errors import MalformedResponse
from syncd.model.identity import Email
from syncd.providers.zitadel import error_detail, normalize

FIXTURES = Path(__file__).parent.parent / "fixtures"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_human_user_maps_every_documented_field() -> None:
    doc = load("zitadel-human.json")
    ident = normalize(doc)
    assert ident.user_id == "284761989876543210"
    assert ident.username == "minnie"
    assert ident.kind == "human"
    assert ident.state == "USER_STATE_ACTIVE"
    assert ident.active is True
    assert ident.given_name == "Minnie"
    assert ident.family_name == "Mouse"
    assert ident.display_name == "Minnie Mouse"
    assert ident.locale == "en"
    assert ident.email == "minnie@acme.com"
    assert ident.email_verified is True
    assert ident.emails == (Email(value="minnie@acme.com", primary=True, verified=True),)
    assert ident.phone is None  # "phone": {} is ZITADEL's omitted zero value
    # details.sequence (a uint64 sent as a string) is the source version
    assert ident.source_version == "42"
    # nanosecond-capable RFC 3339 timestamps parse to UTC
    assert ident.updated_at == datetime(2026, 2, 3, 10, 21, 7, 512893, tzinfo=UTC)
    # everything else (loginNames, gender, passwordChanged, resourceOwner…) stays raw
    assert ident.raw["user"]["loginNames"] == ["minnie@acme.zitadel.cloud"]
    assert ident.raw["user"]["human"]["profile"]["gender"] == "GENDER_FEMALE"
    assert ident.raw["user"]["human"]["passwordChanged"] == "2025-11-10T08:05:00Z"


def test_machine_user_is_kind_machine_with_its_name() -> None:
    ident = normalize(load("zitadel-machine.json"))
    assert ident.kind == "machine"
    assert ident.user_id == "301112223334445556"
    assert ident.username == "sync-bot"
    assert ident.display_name == "Sync Bot"
    assert ident.email is None and ident.emails == ()
    assert ident.source_version == "7"
    assert ident.raw["user"]["machine"]["hasSecret"] is True
    # accessTokenType omitted = the default (bearer), kept as the provider sent it
    assert "accessTokenType" not in ident.raw["user"]["machine"]


@pytest.mark.parametrize(
    ("state", "active"),
    [
        ("USER_STATE_ACTIVE", True),
        ("USER_STATE_INITIAL", True),
        ("USER_STATE_INACTIVE", False),
        ("USER_STATE_LOCKED", False),
        ("USER_STATE_DELETED", False),
    ],
)
def test_inactive_and_locked_states_are_not_active(state: str, active: bool) -> None:
    doc = load("zitadel-human.json")
    doc["user"]["state"] = state
    ident = normalize(doc)
    assert ident.state == state
    assert ident.active is active


def test_omitted_state_and_verification_are_zero_values() -> None:
    doc = load("zitadel-human.json")
    del doc["user"]["state"]
    del doc["user"]["human"]["email"]["isVerified"]
    ident = normalize(doc)
    assert ident.state == "USER_STATE_UNSPECIFIED"
    assert ident.email_verified is False


def test_phone_is_mapped_when_present() -> None:
    doc = load("zitadel-human.json")
    doc["user"]["human"]["phone"] = {"phone": "+41791234567", "isVerified": True}
    assert normalize(doc).phone == "+41791234567"


def test_a_document_without_user_id_is_malformed() -> None:
    doc = load("zitadel-human.json")
    del doc["user"]["userId"]
    with pytest.raises(MalformedResponse):
        normalize(doc)


def test_grpc_gateway_error_body_gives_its_message() -> None:
    body = (FIXTURES / "zitadel-error-404.json").read_bytes()
    assert error_detail(body) == "User could not be found (QUERY-Dfbg2)"
