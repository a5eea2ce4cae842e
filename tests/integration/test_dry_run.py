"""`resync --dry-run` previews exactly the pass that follows it: the same
counts and the same JSON Patches, because both are the one pure plan
(``syncd.sync.plan``) of the same answers. Checked over creations, updates,
an ``ignore_fields`` edit, a first 404, a confirmed deletion, a held deletion
and a restore, against a real PostgreSQL and the ZITADEL fake."""

from __future__ import annotations

import copy

from tests.integration.conftest import FAST

CHANGES = ("created", "updated", "restored", "deleted")


async def preview_then_pass(engine, store) -> tuple[dict, dict]:
    """Dry run, then the real pass, over every target; returns the counts and
    the change patches of both (the pass's from the outbox)."""
    await store.make_due("zitadel", None)
    preview = await engine.dry_run("zitadel")
    last = await store.pool.fetchval("SELECT coalesce(max(seq), 0) FROM syncd.outbox")
    report = await engine.sync("zitadel", trigger="resync")
    assert report.status == "ok", report.error
    events = await store.pool.fetch(
        "SELECT aggregateid, type, payload FROM syncd.outbox WHERE seq > $1 ORDER BY seq", last
    )
    written = {
        (e["aggregateid"].split(":", 1)[1], e["type"].removeprefix("user.")): e["payload"]["patch"]
        for e in events
    }
    previewed = {(uid, change): ops for uid, change, ops in preview.diffs if change in CHANGES}
    assert preview.counts == report.counts, (preview.counts, report.counts)
    assert previewed == written
    return report.counts, written


async def test_a_dry_run_shows_exactly_what_the_following_pass_does(store, zitadel, make_config, engine_for):
    ids = zitadel.seed(30)
    await store.add_targets("zitadel", ids)
    sync = {"delete_confirmations": 2, "delete_confirm_after": "1s", "max_delete_fraction": 0.1}
    engine = await engine_for(make_config(zitadel, sync=sync, **FAST))

    counts, _ = await preview_then_pass(engine, store)
    assert counts["created"] == 30

    # updates and a first 404 (not confirmed yet: no event)
    zitadel.modify(ids[0])
    zitadel.modify(ids[1])
    gone = zitadel.users.pop(ids[2])
    counts, written = await preview_then_pass(engine, store)
    assert (counts["updated"], counts["not_found"], counts["deleted"]) == (2, 1, 0)
    assert {k for _, k in written} == {"updated"}

    # the second 404, a confirmation interval later, confirms the deletion (1 of 30: within the guard)
    await store.pool.execute(
        "UPDATE syncd.targets SET not_found_since = not_found_since - interval '2 seconds'"
    )
    counts, written = await preview_then_pass(engine, store)
    assert (counts["deleted"], counts["held"]) == (1, 0)
    assert (ids[2], "deleted") in written

    # it comes back: restored
    zitadel.users[ids[2]] = copy.deepcopy(gone)
    counts, written = await preview_then_pass(engine, store)
    assert counts["restored"] == 1 and (ids[2], "restored") in written

    # an ignore_fields edit is no change at all, in the preview as in the pass
    edited = await engine_for(make_config(zitadel, sync=sync, ignore_fields=["user.loginNames"], **FAST))
    counts, written = await preview_then_pass(edited, store)
    assert counts["unchanged"] == 30 and counts["updated"] == 0 and not written

    # five users gone at once: over max_delete_fraction, held for an admin
    for uid in ids[10:15]:
        zitadel.users.pop(uid)
    await preview_then_pass(edited, store)  # the first 404s
    await store.pool.execute(
        "UPDATE syncd.targets SET not_found_since = not_found_since - interval '2 seconds'"
    )
    counts, written = await preview_then_pass(edited, store)
    assert (counts["held"], counts["deleted"]) == (5, 0) and not written
