"""Discovery against the fake providers of all five types (real HTTP on
127.0.0.1, a real PostgreSQL): a listing over several pages enrols every
user and the next pass creates them; a user removed upstream is deleted only
through its by-id 404; a user added upstream arrives with the next listing;
and every broken listing changes nothing, with a clear reason, a log line
and a non-zero exit from `syncd discover`."""

from __future__ import annotations

import pytest

from syncd.discovery.listing import Verdict
from syncd.testing.dialects import fake
from tests.integration.conftest import FAST, TOKEN_ENV
from tests.integration.test_cli import syncd

TYPES = ["zitadel", "wacht", "fortanix", "webex", "scim"]
N = 130
#: the fakes' page cap: 130 users are at least three pages for every type
CAP = 40
#: the fake's list pages hold at most this many users (the conftest's provider)
LISTING_CAP = CAP


async def discovering_engine(f, make_config, engine_for, **over):
    return await engine_for(make_config(("corp", f), discover="1h", **{**FAST, **over}))


async def target_ids(store) -> set[str]:
    return set(await store.target_sources("corp"))


async def mirrored(store) -> set[str]:
    rows = await store.pool.fetch(
        "SELECT user_id FROM syncd.users WHERE provider = 'corp' AND deleted_at IS NULL"
    )
    return {r["user_id"] for r in rows}


async def event_types(store) -> list[str]:
    return [r["type"] for r in await store.pool.fetch("SELECT type FROM syncd.outbox ORDER BY seq")]


async def list_again(store) -> None:
    await store.pool.execute("UPDATE syncd.discovery SET next_at = now()")


@pytest.mark.parametrize("provider", TYPES, indirect=True)
async def test_a_listing_over_several_pages_enrols_everyone_and_the_pass_creates_them(
    provider, store, make_config, engine_for
):
    ids = provider.seed(N)
    engine = await discovering_engine(provider, make_config, engine_for)
    report = await engine.discover("corp")
    assert report.verdict is Verdict.COMPLETE, report.reason
    assert (report.listed, report.new, report.missing) == (N, N, 0)
    assert provider.listing.calls >= 3  # paged, not one answer
    assert await target_ids(store) == set(ids)
    synced = await engine.sync("corp")
    assert synced.counts["created"] == N
    assert await mirrored(store) == set(ids)


@pytest.mark.parametrize("provider", TYPES, indirect=True)
async def test_removed_upstream_is_deleted_by_its_404_and_added_upstream_is_created(
    provider, store, make_config, engine_for
):
    ids = provider.seed(N)
    engine = await discovering_engine(provider, make_config, engine_for)
    await engine.discover("corp")
    await engine.sync("corp")
    gone = ids[5]
    provider.users.pop(gone)
    [added] = provider.seed(1, start=N)
    await list_again(store)
    report = await engine.discover("corp")
    assert (report.new, report.missing, report.unchanged) == (1, 1, N - 1)
    # the listing removed nothing: the user is still mirrored, still a target
    assert gone in await mirrored(store) and gone in await target_ids(store)
    assert "user.deleted" not in await event_types(store)
    synced = await engine.sync("corp")
    assert (synced.counts["created"], synced.counts["deleted"]) == (1, 1)
    assert await mirrored(store) == (set(ids) - {gone}) | {added}


SCIM_FAULTS = {
    "a 500 in the middle": ({"inject": ("500", "startIndex=41")}, Verdict.FAILED, "status=500"),
    "a page that is not JSON": ({"inject": ("garbage", "startIndex=41")}, Verdict.FAILED, "not valid JSON"),
    "credentials refused mid-listing": ({"inject": ("401", "startIndex=81")}, Verdict.FAILED, "401"),
    "startIndex ignored": ({"ignore_paging": True}, Verdict.INCOMPLETE, "ignores the paging parameter"),
    "page repeated, start echoed": (
        {"ignore_paging": True, "echo_requested": True},
        Verdict.INCOMPLETE,
        "repeats the page at 1",
    ),
    "short of totalResults": ({"hidden": {"__last__"}}, Verdict.INCOMPLETE, "but the server announced"),
    "duplicate ids across pages": ({"shift": 1}, Verdict.INCOMPLETE, "listed twice"),
}


@pytest.mark.parametrize("fault", list(SCIM_FAULTS))
async def test_a_broken_listing_changes_nothing(fault, store, make_config, engine_for, monkeypatch, logs):
    quirks, verdict, reason = SCIM_FAULTS[fault]
    f = fake("scim")
    f.listing.cap = CAP
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(N)
        engine = await discovering_engine(f, make_config, engine_for)
        await store.add_targets("corp", ids[:10])
        await engine.sync("corp")
        await store.pool.execute("UPDATE syncd.targets SET next_sync_at = now() + interval '1 hour'")
        for key, value in quirks.items():
            if key == "inject":
                f.inject(value[0], only_path=value[1], times=None)
            elif key == "hidden":
                f.listing.hidden = {ids[-1]}
            else:
                setattr(f.listing, key, value)
        report = await engine.discover("corp")
    assert report.verdict is verdict and reason in report.reason, report.reason
    assert await target_ids(store) == set(ids[:10])
    due = await store.pool.fetchval("SELECT count(*) FROM syncd.targets WHERE next_sync_at <= now()")
    assert due == 0
    assert "user.deleted" not in await event_types(store)
    refused = [e for e in logs if e["event"] == "discovery.refused"]
    assert refused and refused[0]["verdict"] == verdict and reason in refused[0]["reason"]


async def test_an_empty_listing_is_refused_while_users_are_mirrored(
    store, make_config, engine_for, monkeypatch
):
    f = fake("zitadel")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(20)
        engine = await discovering_engine(f, make_config, engine_for)
        await engine.discover("corp")
        await engine.sync("corp")
        f.users.clear()
        await list_again(store)
        report = await engine.discover("corp")
        assert report.verdict is Verdict.EMPTY and "holds 20 users" in report.reason
        assert await mirrored(store) == set(ids)
        allowed = await engine.discover("corp", allow_empty=True)
        assert allowed.verdict is Verdict.COMPLETE and allowed.missing == 20


async def test_a_scoped_listing_sends_its_filter(store, make_config, engine_for, monkeypatch):
    f = fake("scim")
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        ids = f.seed(30)
        wanted = f.users[ids[7]]["userName"]
        engine = await discovering_engine(
            f, make_config, engine_for, discover_filter=f'userName eq "{wanted}"'
        )
        report = await engine.discover("corp")
        assert report.verdict is Verdict.COMPLETE and report.listed == 1
        assert await target_ids(store) == {ids[7]}
        f.listing.filter_ignored = True  # the server stops supporting filters
        await list_again(store)
        refused = await engine.discover("corp")
        assert refused.verdict is Verdict.FAILED and "filter.supported" in refused.reason
        assert await target_ids(store) == {ids[7]}


def discover_config(tmp_path, db_url, f, extra: str = "") -> str:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f"""
[database]
url = "{db_url}"

[[providers]]
name = "corp"
type = "scim"
base_url = "{f.url}"
token_env = "{TOKEN_ENV}"
discover = "1h"
{extra}
"""
    )
    return str(path)


async def test_syncd_discover_prints_the_counts_and_fails_on_a_broken_listing(tmp_path, store, db_url):
    f = fake("scim")
    f.listing.cap = CAP
    async with f:
        ids = f.seed(N)
        cfg = discover_config(tmp_path, db_url, f)
        env = {TOKEN_ENV: f.token}
        rc, out, err = await syncd("discover", "--dry-run", "--config", cfg, env=env)
        assert rc == 0, err
        assert "dry run" in out and "complete" in out and str(N) in out
        assert await target_ids(store) == set()
        rc, out, err = await syncd("discover", "--config", cfg, env=env)
        assert rc == 0, err
        assert await target_ids(store) == set(ids)
        f.listing.ignore_paging = True
        await list_again(store)
        rc, out, err = await syncd("discover", "--provider", "corp", "--config", cfg, env=env)
        assert rc == 1
        assert (
            "incomplete" in out
            and "no one enrolled or made due" in err
            and "ignores the paging parameter" in err
        )
        rc, out, err = await syncd("status", "--config", cfg, env=env)
        assert rc == 0 and "incomplete" in out


async def test_two_daemons_list_on_schedule_once_and_sync_what_they_enrolled(
    store, zitadel, db_url, start_daemon
):
    """`discover = "1s"`: the daemons list by themselves (the lease that keeps
    them from listing at once is tested in test_discovery_store), and what a
    listing enrolled is created."""
    from tests.integration.conftest import wait_for

    ids = zitadel.seed(30)
    a = await start_daemon(db_url, zitadel.url, name="a", extra='discover = "1s"')
    b = await start_daemon(db_url, zitadel.url, name="b", extra='discover = "1s"')

    async def mirrored_count() -> int:
        return await store.pool.fetchval("SELECT count(*) FROM syncd.users WHERE deleted_at IS NULL")

    await wait_for(lambda: _equals(mirrored_count, 30), timeout=30)
    [added] = zitadel.seed(1, start=30)
    await wait_for(lambda: _equals(mirrored_count, 31), timeout=30)
    assert added in await mirrored(store)
    finished = [e for d in (a, b) for e in d.logs() if e.get("event") == "discovery.finished"]
    assert finished and all(e["verdict"] == "complete" for e in finished)
    assert set(ids) <= await target_ids(store)


async def _equals(value, expected) -> bool:
    return await value() == expected


async def test_sigterm_mid_listing_changes_nothing_and_frees_the_lease(store, zitadel, db_url, start_daemon):
    import asyncio
    import signal

    from tests.integration.conftest import wait_for

    zitadel.seed(50)
    zitadel.listing.cap = 10
    zitadel.latency = 0.5  # five pages: the daemon is mid-listing for seconds
    d = await start_daemon(db_url, zitadel.url, extra='discover = "1h"')
    await wait_for(lambda: zitadel.listing.calls >= 1, timeout=20)
    d.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(d.proc.wait(), 20) == 0
    assert await target_ids(store) == set()
    [row] = await store.discovery_status()
    assert row["leased_by"] is None and "interrupted" in row["reason"]
    assert "discovery.interrupted" in [e.get("event") for e in d.logs()]
