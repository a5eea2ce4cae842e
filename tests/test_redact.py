"""Credential material is stripped at any depth, and only where present."""

from __future__ import annotations

import orjson
import pytest

from syncd.logs import REDACTED, redact, register_secret
from syncd.redact import may_hold_secrets, secret_markers, strip_secrets


def test_secrets_are_removed_at_any_depth_case_insensitively():
    doc = {"a": {"TOTP_Secret": "x", "keep": 1}, "list": [{"access_token": "t", "id": 2}], "password": "p"}
    assert strip_secrets(doc) == {"a": {"keep": 1}, "list": [{"id": 2}]}
    assert doc["password"] == "p"  # the input is not mutated


def test_a_document_without_secrets_is_returned_as_is():
    doc = {"user": {"hasSecret": True, "details": {"sequence": "1"}}, "emails": [{"value": "a@b"}]}
    assert strip_secrets(doc) is doc


def test_configured_redact_fields_are_stripped_too():
    assert strip_secrets({"ssn": "1", "x": 1}, ["SSN"]) == {"x": 1}


def test_the_body_scan_matches_keys_not_string_values():
    markers = secret_markers(["ssn"])
    for body in (b'{"Otp_Url" : "otpauth://"}', b'{"ssn":"1"}'):
        assert may_hold_secrets(body, orjson.loads(body), markers)
    for body in (b'{"note":"my \\"password\\": is not here"}', b'{"hasSecret":true}'):
        assert not may_hold_secrets(body, orjson.loads(body), markers)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": {"PASSWORD": "p"}}',
        b'{"\\u0070assword": "p"}',  # a JSON escape in the key
        b'{"note": "caf\\u00e9", "Totp_Secret": "s"}',  # an escape elsewhere, a secret key too
        '{"access_to\u212aen": "t"}'.encode(),  # KELVIN SIGN, which lower() makes a "k"
        '{"Lösenord": "p"}'.encode(),  # a configured key that is not ASCII
        b'{"vault\\/token": "t"}',  # a configured key with a slash, spelled "\/"
    ],
)
def test_the_body_scan_finds_every_key_strip_secrets_removes(body):
    doc = orjson.loads(body)
    configured = ["LÖSENORD", "vault/token"]
    assert strip_secrets(doc, configured) != doc  # there is a secret to remove ...
    assert may_hold_secrets(body, doc, secret_markers(configured))  # ... and the scan finds it


def test_log_lines_never_carry_a_registered_secret_or_a_secret_key():
    register_secret("tok-1234567890")
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "error": "sent Bearer tok-1234567890",
            "password": "p",
            "nested": {"refresh_token": "r"},
            "token_env": "ZITADEL_TOKEN",
        },
    )
    assert "tok-1234567890" not in event["error"]
    assert event["password"] == REDACTED and event["nested"]["refresh_token"] == REDACTED
    assert event["token_env"] == "ZITADEL_TOKEN"  # the name of a variable is not a secret
