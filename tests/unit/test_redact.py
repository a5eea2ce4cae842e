"""Credential material is stripped at any depth and in any spelling, and only
where present; error text never carries a secret."""

from __future__ import annotations

import random

import orjson
import pytest

from syncd.errors import ProviderError, TransientError
from syncd.logs import REDACTED, redact, register_secret
from syncd.redact import (
    SECRET_KEYS,
    may_hold_secrets,
    normalize_key,
    scrub_text,
    secret_markers,
    strip_secrets,
)


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


# -- every spelling of a secret key (issue 13, item 10) ------------------------------------

#: spellings seen in real documents that exact-name matching let through
SPELLINGS = [
    "TotpSecret",
    "totpSecret",
    "accessToken",
    "refreshToken",
    "clientSecret",
    "apiKey",
    "backupCodes",
    "client-secret",
    "API_KEY",
    "Private.Key",
    "otp url",
    "_password",
    "ID-TOKEN",
]


@pytest.mark.parametrize("key", SPELLINGS)
def test_a_secret_key_is_stripped_whatever_its_case_and_separators(key):
    doc = {"id": "1", "a": {"list": [{key: "s3cret-value", "keep": 1}]}}
    body = orjson.dumps(doc)
    assert may_hold_secrets(body, doc, secret_markers())  # the fast scan sees it ...
    assert strip_secrets(doc) == {"id": "1", "a": {"list": [{"keep": 1}]}}  # ... and it goes


@pytest.mark.parametrize("key", ["passwordChanged", "hasSecret", "secretary", "tokenType", "api"])
def test_keys_that_only_resemble_a_secret_stay(key):
    doc = {key: "kept", "id": "1"}
    assert strip_secrets(doc) is doc
    assert not may_hold_secrets(orjson.dumps(doc), doc, secret_markers())


def test_configured_redact_fields_match_any_spelling_too():
    doc = {"enterprise": {"costCenter": "cc-7", "department": "R&D"}, "SSN": "1"}
    markers = secret_markers(["cost_center", "ssn"])
    assert may_hold_secrets(orjson.dumps(doc), doc, markers)
    assert strip_secrets(doc, ["cost_center", "ssn"]) == {"enterprise": {"department": "R&D"}}


def test_the_body_scan_and_the_strip_agree_on_random_spellings():
    """Whatever ``strip_secrets`` removes, the scan that guards it must find:
    random case and separators around and inside every secret key."""
    rng = random.Random(13)
    seps = ["", "", "_", "-", ".", " "]
    for key in [*sorted(SECRET_KEYS), "cost_center"]:
        bare = normalize_key(key)
        for _ in range(50):
            spelled = "".join(rng.choice(seps) + (c.upper() if rng.random() < 0.5 else c) for c in bare)
            spelled += rng.choice(seps)
            doc = {"outer": [{"x": 1, spelled: "v"}]}
            body = orjson.dumps(doc, option=orjson.OPT_INDENT_2 if rng.random() < 0.5 else 0)
            assert strip_secrets(doc, ["costCenter"]) == {"outer": [{"x": 1}]}, spelled
            assert may_hold_secrets(body, doc, secret_markers(["costCenter"])), spelled


# -- error text (issue 13, item 11) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a 200 body cut short, its first bytes a secret field: the value runs to the end
        ('{"totp_secret":"JBSWY3DPEHPK3PXP', '{"totp_secret":"[redacted]'),
        (
            '{"id": "1", "totpSecret": "JB\\"SW", "name": "x"}',
            '{"id": "1", "totpSecret": "[redacted]", "name": "x"}',
        ),
        ('{"backup_codes": ["A1", "B2"], "keep": 1}', '{"backup_codes": [redacted], "keep": 1}'),
        (
            "invalid grant access_token=abc123&refresh_token=def456 x",
            "invalid grant access_token=[redacted]&refresh_token=[redacted] x",
        ),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Authorization: Bearer [redacted]"),
        ("token Bearer tok-AbCdEf123456 is invalid", "token Bearer [redacted] is invalid"),
        ("{'client-secret': 'sup3r', 'id': 7}", "{'client-secret': '[redacted]', 'id': 7}"),
        # JSON inside a JSON string (a provider quoting an upstream answer)
        (
            '{"message": "upstream: {\\"refreshToken\\": \\"RT-1\\", \\"x\\": 1}"}',
            '{"message": "upstream: {\\"refreshToken\\": \\"[redacted]\\", \\"x\\": 1}"}',
        ),
        ("GET https://admin:hunter2@idp.example/v2 failed", "GET https://[redacted]@idp.example/v2 failed"),
        ("GET https://tok3n@idp.example:8443/v2 failed", "GET https://[redacted]@idp.example:8443/v2 failed"),
        (
            '{"api key": "k1", "note": "hi", "password":"p"}',
            '{"api key": "[redacted]", "note": "hi", "password":"[redacted]"}',
        ),
    ],
)
def test_error_text_hides_secret_looking_fields(text, expected):
    assert scrub_text(text, ()) == expected
    assert scrub_text(expected, ()) == expected  # scrubbing twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "credentials rejected status=401 detail='Errors.Token.Invalid (AUTH-7fs1e)'",
        "user not found status=404 tracking_id=ROUTER_FAKE-0000",
        "the bearer token expired",
        "body is not valid JSON (unexpected end of data: line 1 column 9 (char 8))",
        "404 that is not the provider's not-found answer (wrong base_url or a proxy?): http://127.0.0.1:1/v2/users/x",
    ],
)
def test_error_text_without_secrets_reads_as_it_was(text):
    assert scrub_text(text, ()) == text


def test_known_secret_values_are_replaced_wherever_they_appear():
    assert scrub_text("echo:tok-42-abcdef;", ["tok-42-abcdef"]) == "echo:[redacted];"
    register_secret("registered-9f8e7d6c")
    assert "registered-9f8e7d6c" not in scrub_text("x registered-9f8e7d6cregistered-9f8e7d6c y")


def test_a_provider_error_is_scrubbed_wherever_it_is_read():
    register_secret("tok-echoed-1234567")
    exc = TransientError(
        "provider error",
        provider="p",
        status=500,
        detail='refused tok-echoed-1234567 {"totp_secret": "JBSWY3DP',
    )
    for shown in (str(exc), exc.detail, repr(exc.args)):
        assert "tok-echoed-1234567" not in shown and "JBSWY3DP" not in shown
    assert "status=500" in str(exc) and "[redacted]" in str(exc)
    later = ProviderError("refused", detail="tok-registered-later-999")
    register_secret("tok-registered-later-999")  # registered after the error was made
    assert "tok-registered-later-999" not in str(later)


def test_log_lines_redact_camel_case_keys_and_secret_fields_in_text():
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "accessToken": "a",
            "nested": {"apiKey": "k", "keep": 1},
            "error": 'cut short: {"totpSecret": "JBSWY3DP',
        },
    )
    assert event["accessToken"] == REDACTED and event["nested"] == {"apiKey": REDACTED, "keep": 1}
    assert "JBSWY3DP" not in event["error"]
