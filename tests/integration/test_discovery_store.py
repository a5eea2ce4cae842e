"""A discovery's writes against a real PostgreSQL: what a complete listing
changes, that an incomplete, failed, empty or interrupted one changes
nothing, that two replicas never list one provider at once, and that a dry
run writes nothing. The pages come from plain generators here; the provider
listings over HTTP are tested with the fake providers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from syncd.discovery.listing import Page, Verdict
from syncd.discovery.run import Discoverer, DiscoverySettings
from syncd.errors import AuthError

PROVIDER = "corp"


def pages_of(ids: list[str], per_page: int = 10, **broken) -> callable:
    """A SCIM-like listing of ``ids``; ``repeat_at``/``fail_at`` break one page."""

    async def walk() -> AsyncIterator[Page]:
        for start in range(1, max(len(ids), 1) + 1, per_page):
            chunk = tuple(ids[start - 1 : start - 1 + per_page])
            if broken.get("fail_at") == start:
                raise AuthError("credentials refused", provider=PROVIDER, status=401)
            if broken.get("repeat_at") == start:
                chunk = tuple(ids[:per_page])
            nxt = start + len(chunk) if start - 1 + len(chunk) < len(ids) else None
            yield Page(cursor=start, ids=chunk, echoed=start, total=len(ids), next=nxt)

    return walk


def discoverer(store, pages, owner="replica-a", **settings) -> Discoverer:
    return Discoverer(
        store=store,
        settings=DiscoverySettings(provider=PROVIDER, interval=3600, **settings),
        pages=pages,
        owner=owner,
    )


async def targets(store) -> dict[str, str]:
    return await store.target_sources(PROVIDER)


async def due(store) -> set[str]:
    rows = await store.pool.fetch(
        "SELECT user_id FROM syncd.targets WHERE provider = $1 AND next_sync_at <= now()", PROVIDER
    )
    return {r["user_id"] for r in rows}


IDS = [f"u{i:02d}" for i in range(35)]


async def test_a_complete_listing_enrols_every_user_due_now(store):
    report = await discoverer(store, pages_of(IDS)).run()
    assert report.verdict is Verdict.COMPLETE
    assert (report.listed, report.new, report.missing, report.unchanged) == (35, 35, 0, 0)
    assert await targets(store) == dict.fromkeys(IDS, "discovered")
    assert await due(store) == set(IDS)
    status = {r["provider"]: r for r in await store.discovery_status()}
    assert status[PROVIDER]["verdict"] == "complete" and status[PROVIDER]["listed"] == 35
    assert status[PROVIDER]["leased_by"] is None


async def test_a_user_missing_from_the_listing_is_made_due_never_removed(store):
    await discoverer(store, pages_of(IDS)).run()
    await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now() + interval '1 hour'")
    await store.pool.execute("UPDATE syncd.discovery SET next_at = now()")
    report = await discoverer(store, pages_of([*IDS[:-1], "u99"])).run()
    assert (report.new, report.missing, report.unchanged) == (1, 1, 34)
    assert set(await targets(store)) == {*IDS, "u99"}
    assert await due(store) == {IDS[-1], "u99"}


@pytest.mark.parametrize(
    "broken, verdict, reason",
    [
        ({"repeat_at": 11}, Verdict.INCOMPLETE, "repeats the page at 1"),
        ({"fail_at": 21}, Verdict.FAILED, "credentials refused"),
    ],
)
async def test_a_broken_listing_changes_nothing(store, broken, verdict, reason):
    await store.add_targets(PROVIDER, ["explicit-1"])
    report = await discoverer(store, pages_of(IDS, **broken)).run()
    assert report.verdict is verdict and reason in report.reason
    assert await targets(store) == {"explicit-1": "explicit"}
    row = (await store.discovery_status())[0]
    assert (row["verdict"], row["leased_by"]) == (verdict, None) and reason in row["reason"]


async def test_an_empty_listing_is_refused_while_the_mirror_holds_users(store):
    await store.pool.execute(
        "INSERT INTO syncd.users (provider, user_id, raw, content_hash) VALUES ($1, 'u00', '{}', 'h')",
        PROVIDER,
    )
    await store.add_targets(PROVIDER, ["u00"])
    await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now() + interval '1 hour'")
    report = await discoverer(store, pages_of([])).run()
    assert report.verdict is Verdict.EMPTY and "--allow-empty" in report.reason
    assert await due(store) == set()
    allowed = await discoverer(store, pages_of([]), allow_empty=True).run()
    assert allowed.verdict is Verdict.COMPLETE and allowed.missing == 1
    assert await due(store) == {"u00"}


async def test_a_dry_run_writes_nothing(store):
    report = await discoverer(store, pages_of(IDS)).run(dry_run=True)
    assert report.verdict is Verdict.COMPLETE and report.new == 35 and report.dry_run
    assert await targets(store) == {}
    assert await store.discovery_status() == []


async def test_two_replicas_never_list_one_provider_at_once(store):
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> AsyncIterator[Page]:
        yield Page(cursor=1, ids=("a",), echoed=1, total=2, next=2)
        started.set()
        await release.wait()
        yield Page(cursor=2, ids=("b",), echoed=2, total=2, next=None)

    first = asyncio.create_task(discoverer(store, slow, owner="replica-a").run())
    await asyncio.wait_for(started.wait(), 10)
    second = await discoverer(store, pages_of(IDS), owner="replica-b").run()
    assert second.verdict is Verdict.LEASED and second.holder.owner == "replica-a"
    assert await discoverer(store, pages_of(IDS), owner="replica-b").run_if_due() is None
    release.set()
    assert (await first).verdict is Verdict.COMPLETE
    assert set(await targets(store)) == {"a", "b"}


async def test_a_listing_interrupted_by_sigterm_changes_nothing_and_frees_the_lease(store):
    started = asyncio.Event()

    async def stuck() -> AsyncIterator[Page]:
        yield Page(cursor=1, ids=("a",), echoed=1, total=2, next=2)
        started.set()
        await asyncio.Event().wait()
        yield Page(cursor=2, ids=("b",), echoed=2, total=2, next=None)

    task = asyncio.create_task(discoverer(store, stuck).run())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await targets(store) == {}
    row = (await store.discovery_status())[0]
    assert row["leased_by"] is None and "interrupted" in row["reason"]
    again = await discoverer(store, pages_of(IDS), owner="replica-b").run()
    assert again.verdict is Verdict.COMPLETE


async def test_a_scoped_listing_leaves_explicit_targets_alone(store):
    await store.add_targets(PROVIDER, ["admin-added"])
    await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now() + interval '1 hour'")
    report = await discoverer(store, pages_of(IDS), scoped=True).run()
    assert report.missing == 0
    assert (await targets(store))["admin-added"] == "explicit"
    assert "admin-added" not in await due(store)


async def test_adding_a_discovered_user_by_hand_makes_it_explicit(store):
    await discoverer(store, pages_of(IDS)).run()
    await store.add_targets(PROVIDER, ["u01", "u01"])
    sources = await targets(store)
    assert sources["u01"] == "explicit" and sources["u02"] == "discovered"


async def test_a_lease_lost_mid_listing_ends_it_and_writes_nothing(store):
    """A page that waits long (a Retry-After) while the lease expires and
    another replica takes it: the heartbeat notices, nothing is written."""
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> AsyncIterator[Page]:
        yield Page(cursor=1, ids=("a",), echoed=1, total=2, next=2)
        started.set()
        await release.wait()
        yield Page(cursor=2, ids=("b",), echoed=2, total=2, next=None)

    task = asyncio.create_task(discoverer(store, slow, lease_seconds=0.3).run())
    await asyncio.wait_for(started.wait(), 10)
    await store.pool.execute("UPDATE syncd.discovery SET leased_by = 'replica-b'")
    report = await asyncio.wait_for(task, 10)
    assert report.verdict is Verdict.FAILED and "lease was lost" in report.reason
    assert await targets(store) == {}
