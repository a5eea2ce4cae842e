"""Conditional reads, the pure parts: which ETags are kept and sent back
(RFC 9110 §8.8.3), what a 304 is (only an answer to If-None-Match), and what
the plan makes of a 304 (unchanged, nothing written but the schedule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.errors import ProviderError
from syncd.http.etag import MAX_ETAG, etag_problem, usable_etag
from syncd.http.response import Health, Rules, interpret
from syncd.model.diff import record_json_and_hash
from syncd.model.identity import Identity
from syncd.model.status import TargetStatus
from syncd.sync.plan import Outcome, PlanSettings, plan_batch, rows_needed

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SETTINGS = PlanSettings(provider="corp", provider_type="scim", interval=900.0, etag_scope="scope-1")
RULES = Rules("corp", lambda body: None)


@pytest.mark.parametrize(
    "value",
    ['W/"7003"', '"33a64df551425fcc55e4d42a148795d9f25f89d4"', 'W/""', "bare-token-123", "x" * MAX_ETAG],
)
def test_a_short_visible_ascii_etag_is_kept_verbatim_weak_or_strong(value: str) -> None:
    assert etag_problem(value) is None and usable_etag(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        'W/"' + "a" * MAX_ETAG + '"',
        'W/"a"\r\nX-Injected: 1',
        'W/"a\nb"',
        'W/"a\x00b"',
        'W/"a\x7fb"',
        'W/"a\tb"',
        '"a b"',
        'W/"café"',
    ],
    ids=["empty", "too-long", "crlf", "lf", "nul", "del", "tab", "space", "non-ascii"],
)
def test_a_hostile_etag_is_refused_with_a_reason(value: str) -> None:
    assert etag_problem(value) and usable_etag(value) is None


def test_no_etag_is_none() -> None:
    assert usable_etag(None) is None


def test_a_304_to_a_conditional_read_is_an_answer_and_the_provider_is_up() -> None:
    verdict = interpret(RULES, "http://x/Users/1", 304, {}, b"", conditional=True)
    assert verdict.error is None and verdict.health is Health.UP and verdict.accepted


def test_a_304_to_a_plain_read_is_a_provider_error_that_names_it() -> None:
    verdict = interpret(RULES, "http://x/Users/1", 304, {}, b"")
    assert isinstance(verdict.error, ProviderError) and verdict.error.status == 304
    assert "If-None-Match" in str(verdict.error) and not verdict.accepted


def _target(uid: str, **kw: object) -> dict:
    return {
        "user_id": uid,
        "content_hash": "h1",
        "deleted_at": None,
        "changed_at": NOW - timedelta(days=1),
        "not_found_count": 0,
        "not_found_since": None,
        "attempts": 0,
        "last_synced_at": NOW - timedelta(hours=1),
        "added_at": NOW - timedelta(days=2),
        "last_status": "unchanged",
        "body_hash": "b1",
        "etag": 'W/"1"',
        "etag_scope": "scope-1",
        **kw,
    }


def _row(updates_row: tuple) -> dict:
    keys = ("user_id", "status", "error", "next_in", "nf_count", "nf_since", "failed", "body_hash")
    return dict(zip((*keys, "etag", "etag_scope"), updates_row, strict=True))


def test_a_304_plans_an_unchanged_user_its_etag_and_fingerprint_kept_and_nothing_else() -> None:
    outcome = Outcome(_target("u1"), not_modified=True, body_hash="b1", etag='W/"1"')
    assert rows_needed([outcome]) == []  # no mirror row is read, none is written
    plan = plan_batch([outcome], {}, SETTINGS, NOW, spread=lambda s: s)
    assert len(plan.changes) == 0 and plan.changes.refreshes == [] and plan.deletions == []
    assert (plan.counts["fetched"], plan.counts["unchanged"]) == (1, 1)
    [row] = map(_row, plan.targets.rows)
    assert row["status"] == TargetStatus.UNCHANGED and row["next_in"] == 900.0 and not row["failed"]
    assert (row["body_hash"], row["etag"], row["etag_scope"]) == ("b1", 'W/"1"', "scope-1")


def test_a_200_keeps_its_new_etag_and_one_without_clears_it() -> None:
    ident = Identity(user_id="u1", username="ada", display_name="Ada v2", raw={"id": "u1"})
    record, new_hash = record_json_and_hash(ident)
    changed = Outcome(_target("u1"), record=record, content_hash=new_hash, body_hash="b2", etag='W/"2"')
    bare = Outcome(_target("u2", content_hash=new_hash), record=record, content_hash=new_hash, body_hash="b3")
    row = {"user_id": "u1", "username": "ada", "display_name": "Ada", "raw": {"id": "u1"}, "emails": []}
    plan = plan_batch([changed, bare], {"u1": row}, SETTINGS, NOW, spread=lambda s: s)
    rows = {r["user_id"]: r for r in map(_row, plan.targets.rows)}
    assert (rows["u1"]["status"], rows["u1"]["etag"], rows["u1"]["etag_scope"]) == (
        "updated",
        'W/"2"',
        "scope-1",
    )
    assert (rows["u2"]["status"], rows["u2"]["etag"], rows["u2"]["etag_scope"]) == ("unchanged", None, None)
