"""The pure sync plan with plain values and a fixed clock: no database, no
network, no sleeping. What a batch writes, counts and leaves to the guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from syncd.errors import CircuitOpen, DocumentRefused, NotFound, TransientError
from syncd.model.diff import record_json_and_hash
from syncd.model.events import event_patch, record_from_row
from syncd.model.identity import Identity
from syncd.sync.plan import (
    Outcome,
    PlanSettings,
    guard_deletions,
    plan_batch,
    rows_needed,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SETTINGS = PlanSettings(
    provider="corp",
    provider_type="zitadel",
    interval=900.0,
    error_retry=60.0,
    delete_confirmations=2,
    delete_confirm_after=60.0,
    quarantine_after=3,
)


def exact(seconds: float) -> float:
    return seconds  # no jitter: next_in is what the plan chose


def identity(uid: str, name: str = "Ada", **raw: object) -> Identity:
    return Identity(user_id=uid, username=name.lower(), display_name=name, raw={"id": uid, **raw})


def target(uid: str, **kw: object) -> dict:
    row = {
        "user_id": uid,
        "content_hash": None,
        "deleted_at": None,
        "changed_at": None,
        "not_found_count": 0,
        "not_found_since": None,
        "attempts": 0,
        "last_synced_at": None,
        "added_at": NOW - timedelta(days=1),
        "last_status": None,
        "body_hash": None,
    }
    return {**row, **kw}


def fetched(t: dict, ident: Identity) -> Outcome:
    record, h = record_json_and_hash(ident)
    return Outcome(t, record=record, content_hash=h, version=ident.source_version)


class MirrorRow(dict):
    """A mirror row as asyncpg gives it (``items()`` and item access)."""


def mirror_row(ident: Identity) -> MirrorRow:
    record, h = record_json_and_hash(ident)
    doc = orjson.loads(record)
    return MirrorRow({**doc, "content_hash": h, "changed_at": NOW - timedelta(hours=1), "deleted_at": None})


def plan(outcomes, rows=None, settings=SETTINGS):
    return plan_batch(outcomes, rows or {}, settings, NOW, spread=exact)


def statuses(p) -> dict[str, str]:
    return {row[0]: row[1] for row in p.targets.rows}


def test_a_new_user_is_one_creation_event_and_needs_no_mirror_row():
    o = fetched(target("u1"), identity("u1"))
    assert rows_needed([o]) == []
    p = plan([o])
    assert p.counts["created"] == 1 and p.counts["fetched"] == 1
    assert p.changes.types == ["user.created"]
    [(_, _, _, payload, _)] = p.changes.rows
    assert payload["before"] is None and "patch" not in payload  # the store builds it
    assert event_patch(payload, o.record) == [{"op": "add", "path": "", "value": orjson.loads(o.record)}]
    assert statuses(p) == {"u1": "created"}


def test_an_unchanged_hash_writes_no_event_and_schedules_the_next_sync_at_the_interval():
    ident = identity("u1")
    _, h = record_json_and_hash(ident)
    p = plan([fetched(target("u1", content_hash=h), ident)])
    assert p.counts["unchanged"] == 1 and len(p.changes) == 0
    assert p.targets.rows[0][3] == SETTINGS.interval


def test_an_update_carries_before_after_and_the_patch():
    old, new = identity("u1", "Ada"), identity("u1", "Grace")
    _, old_hash = record_json_and_hash(old)
    o = fetched(target("u1", content_hash=old_hash, changed_at=NOW), new)
    assert rows_needed([o]) == ["u1"]
    p = plan([o], {"u1": mirror_row(old)})
    assert p.counts["updated"] == 1 and p.changes.types == ["user.updated"]
    ops = p.changes.rows[0][3]["patch"]
    assert {"op": "replace", "path": "/display_name", "value": "Grace"} in ops


QUIET = PlanSettings(**{**SETTINGS.__dict__, "quiet": ("loginNames", "meta.location", "updated_at")})


def _quiet_change(before: Identity, after: Identity, settings: PlanSettings = QUIET):
    _, old_hash = record_json_and_hash(before)
    o = fetched(target("u1", content_hash=old_hash, changed_at=NOW), after)
    return o, old_hash, plan([o], {"u1": mirror_row(before)}, settings)


def test_a_change_in_ignored_fields_alone_rewrites_the_row_quietly_with_no_event():
    o, old_hash, p = _quiet_change(identity("u1", loginNames=["a@x"]), identity("u1", loginNames=["b@x"]))
    assert p.counts["unchanged"] == 1 and p.counts["updated"] == 0 and len(p.changes) == 0
    # the raw document is kept up to date: the row is rewritten over the one planned against
    [(uid, record, new_hash, replaces)] = p.changes.refreshes
    assert (uid, new_hash, replaces) == ("u1", o.content_hash, old_hash)
    assert orjson.loads(orjson.dumps(record))["raw"]["loginNames"] == ["b@x"]
    assert statuses(p) == {"u1": "unchanged"}


def test_a_new_meta_location_and_change_marker_alone_are_no_event():
    before = Identity(user_id="u1", updated_at=NOW, raw={"meta": {"location": "https://a/Users/u1"}})
    after = Identity(
        user_id="u1", updated_at=NOW + timedelta(hours=1), raw={"meta": {"location": "https://b/Users/u1"}}
    )
    _, _, p = _quiet_change(before, after)
    assert len(p.changes) == 0 and len(p.changes.refreshes) == 1


def test_a_real_change_beside_quiet_ones_is_one_update_with_all_of_them_in_its_patch():
    before = identity("u1", "Ada", loginNames=["a@x"])
    after = identity("u1", "Grace", loginNames=["b@x"])
    _, _, p = _quiet_change(before, after)
    assert p.changes.types == ["user.updated"] and p.changes.refreshes == []
    paths = {op["path"] for op in p.changes.rows[0][3]["patch"]}
    assert {"/display_name", "/raw/loginNames/0"} <= paths


def test_with_nothing_quiet_every_difference_is_an_event():
    _, _, p = _quiet_change(identity("u1", loginNames=["a@x"]), identity("u1", loginNames=["b@x"]), SETTINGS)
    assert p.changes.types == ["user.updated"] and p.changes.refreshes == []


def test_a_restore_is_an_event_even_when_only_quiet_fields_differ():
    before, after = identity("u1", loginNames=["a@x"]), identity("u1", loginNames=["b@x"])
    _, old_hash = record_json_and_hash(before)
    o = fetched(target("u1", content_hash=old_hash, deleted_at=NOW, changed_at=NOW), after)
    p = plan([o], {"u1": mirror_row(before)}, QUIET)
    assert p.changes.types == ["user.restored"]


def test_a_first_404_is_not_confirmed_and_a_second_one_a_minute_later_is():
    _, h = record_json_and_hash(identity("u1"))
    first = plan([Outcome(target("u1", content_hash=h), error=NotFound("gone"))])
    assert statuses(first) == {"u1": "not_found_unconfirmed"} and first.deletions == []
    assert first.counts["not_found"] == 1
    again = target("u1", content_hash=h, not_found_count=1, not_found_since=NOW - timedelta(seconds=61))
    second = plan([Outcome(again, error=NotFound("gone"))])
    assert statuses(second) == {"u1": "deleting"} and [u for _, u in second.deletions] == ["u1"]
    too_soon = target("u1", content_hash=h, not_found_count=1, not_found_since=NOW - timedelta(seconds=5))
    assert plan([Outcome(too_soon, error=NotFound("gone"))]).deletions == []


def test_a_user_answering_again_after_404s_came_back():
    ident = identity("u1")
    _, h = record_json_and_hash(ident)
    p = plan([fetched(target("u1", content_hash=h, not_found_count=1), ident)])
    assert p.came_back == ["u1"]


def test_a_deleted_user_that_answers_is_restored():
    ident = identity("u1")
    _, h = record_json_and_hash(ident)
    row = mirror_row(ident)
    row["deleted_at"] = NOW - timedelta(hours=1)
    p = plan([fetched(target("u1", content_hash=h, deleted_at=NOW), ident)], {"u1": row})
    assert p.counts["restored"] == 1 and p.changes.types == ["user.restored"]


def test_failures_back_off_and_a_circuit_open_retries_after_the_cooldown():
    p = plan(
        [
            Outcome(target("a", attempts=2), error=TransientError("503")),
            Outcome(target("b"), error=CircuitOpen("open")),
        ]
    )
    next_in = {row[0]: row[3] for row in p.targets.rows}
    assert next_in["a"] == 240.0  # error_retry x 2^2
    assert next_in["b"] == SETTINGS.circuit_cooldown
    assert p.counts["failed"] == 2


def test_a_refused_document_is_quarantined_only_after_refusals_in_a_row():
    refused = DocumentRefused("too large")
    after_outage = plan([Outcome(target("u", attempts=5, last_status="error"), error=refused)])
    assert statuses(after_outage) == {"u": "refused"}
    again = plan([Outcome(target("u", attempts=2, last_status="refused"), error=refused)])
    assert statuses(again) == {"u": "quarantined"}
    assert again.targets.rows[0][3] == SETTINGS.interval


def test_the_guard_holds_a_mass_deletion_and_counts_held_ones_against_the_limit():
    settings = PlanSettings(**{**SETTINGS.__dict__, "max_delete_fraction": 0.1})
    small = guard_deletions(["a"], {}, live=100, recently_deleted=0, pending=0, settings=settings)
    assert small.delete == ["a"] and not small.mass_held
    big = guard_deletions([str(i) for i in range(11)], {}, 100, 0, 0, settings)
    assert big.mass_held and big.delete == [] and len(big.hold) == 11
    # 9 held earlier and not yet decided: two more is over the limit
    assert guard_deletions(["x", "y"], {}, 100, 0, 9, settings).mass_held
    decided = guard_deletions(["r", "h"], {"r": True, "h": False}, 100, 0, 1, settings)
    assert (decided.rejected, decided.already_held, decided.delete) == (["r"], ["h"], [])


def test_a_mirror_row_reads_back_as_the_record_it_was_written_from():
    ident = identity("u1", "Ada", extra={"k": 1})
    assert record_from_row(mirror_row(ident)) == orjson.loads(record_json_and_hash(ident)[0])
