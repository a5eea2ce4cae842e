"""The syncd command line, run as a real process against the test database."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.integration.conftest import TOKEN_ENV


async def syncd(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def write_config(tmp_path: Path, db_url: str, fake_url: str, extra: str = "") -> str:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f"""
[database]
url = "{db_url}"

[sync]
delete_confirmations = 1
max_delete_fraction = 1.0

[[providers]]
name = "corp"
type = "zitadel"
base_url = "{fake_url}"
token_env = "{TOKEN_ENV}"
concurrency = 32
{extra}
"""
    )
    return str(path)


async def test_resync_all_of_1000_users_twice_creates_1000_then_nothing(tmp_path, store, zitadel, db_url):
    ids = zitadel.seed(1000)
    cfg = write_config(tmp_path, db_url, zitadel.url)
    rc, out, err = await syncd(
        "targets", "add", "--provider", "corp", "--file", _ids_file(tmp_path, ids), "--config", cfg
    )
    assert rc == 0, err
    assert "1000 target(s) added" in out

    rc, out, err = await syncd("resync", "--all", "--config", cfg)
    assert rc == 0, err
    assert "created 1000" in out
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox WHERE type = 'user.created'") == 1000

    rc, out, err = await syncd("resync", "--all", "--config", cfg)
    assert rc == 0, err
    assert "unchanged 1000" in out and "created 0" in out
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox") == 1000


def _ids_file(tmp_path: Path, ids: list[str]) -> str:
    p = tmp_path / "ids.txt"
    p.write_text("\n".join(ids) + "\n")
    return str(p)


async def test_resync_one_user_dry_run_prints_the_patch_and_writes_nothing(tmp_path, store, zitadel, db_url):
    ids = zitadel.seed(3)
    cfg = write_config(tmp_path, db_url, zitadel.url, extra=f"user_ids = {json.dumps(ids)}")
    rc, _, err = await syncd("resync", "--all", "--config", cfg)
    assert rc == 0, err
    zitadel.modify(ids[1])

    rc, out, err = await syncd("resync", "--provider", "corp", "--user", ids[1], "--dry-run", "--config", cfg)
    assert rc == 0, err
    [line] = out.strip().splitlines()
    diff = json.loads(line)
    assert diff["user_id"] == ids[1] and diff["change"] == "updated"
    assert {"op": "replace", "path": "/display_name", "value": "Mickey Mouse (v12)"} in diff["patch"]
    assert "dry run: nothing written" in err
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox WHERE type = 'user.updated'") == 0
    # nor a target: a dry run of a user that is not one yet leaves none behind
    new_id = zitadel.seed(1, start=100)[0]
    rc, out, err = await syncd("resync", "--provider", "corp", "--user", new_id, "--dry-run", "--config", cfg)
    assert rc == 0, err
    assert json.loads(out.strip())["change"] == "created"
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.targets WHERE user_id = $1", new_id) == 0

    rc, out, err = await syncd("resync", "--provider", "corp", "--user", ids[1], "--config", cfg)
    assert rc == 0, err
    assert "updated 1" in out and "fetched 1," in out


async def test_targets_status_and_remove(tmp_path, store, zitadel, db_url):
    ids = zitadel.seed(2)
    cfg = write_config(tmp_path, db_url, zitadel.url)
    assert (await syncd("targets", "add", "--provider", "corp", *ids, "--config", cfg))[0] == 0
    assert (await syncd("resync", "--all", "--config", cfg))[0] == 0
    rc, out, _ = await syncd("targets", "list", "--config", cfg)
    assert rc == 0 and ids[0] in out and "created" in out
    rc, out, _ = await syncd("status", "--config", cfg)
    assert rc == 0
    assert "corp" in out and "recent sync passes" in out
    rc, out, _ = await syncd("targets", "remove", "--provider", "corp", ids[0], "--config", cfg)
    assert rc == 0 and "1 target(s) removed" in out


async def test_failures_are_counted_and_exit_nonzero_with_the_error_on_the_target(
    tmp_path, store, zitadel, db_url
):
    ids = zitadel.seed(3)
    zitadel.inject("500", times=None)
    cfg = write_config(tmp_path, db_url, zitadel.url, extra="max_attempts = 2\nuser_ids = " + json.dumps(ids))
    rc, out, _ = await syncd("resync", "--all", "--config", cfg)
    assert rc == 1
    assert "failed 3" in out
    errors = await store.pool.fetch("SELECT last_error FROM syncd.targets")
    assert all("status=500" in e["last_error"] for e in errors)
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users") == 0


async def test_check_reports_bad_credentials_by_provider(tmp_path, store, zitadel, db_url):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    rc, out, _ = await syncd("check", "--config", cfg)
    assert rc == 0, out
    assert "credentials accepted" in out and "database: reachable" in out
    rc, out, _ = await syncd("check", "--config", cfg, env={TOKEN_ENV: "wrong-token"})
    assert rc == 1
    assert "provider corp (zitadel): FAILED: credentials rejected status=401" in out
    assert "wrong-token" not in out


async def test_check_respects_and_shares_the_providers_retry_after(tmp_path, store, zitadel, db_url):
    """A provider paused by a Retry-After is not contacted by `syncd check`;
    a 429 the check gets is recorded for the daemons, not waited out."""
    cfg = write_config(tmp_path, db_url, zitadel.url)
    await store.pool.execute(
        "INSERT INTO syncd.provider_state (provider, paused_until) VALUES ('corp', now() + interval '10 minutes')"
    )
    before = len(zitadel.requests)
    rc, out, _ = await syncd("check", "--config", cfg)
    assert rc == 1 and "NOT CHECKED: paused by the provider's Retry-After until" in out
    assert len(zitadel.requests) == before

    await store.pool.execute("DELETE FROM syncd.provider_state")
    zitadel.inject("429", retry_after="120", times=1)
    rc, out, _ = await syncd("check", "--config", cfg)
    assert rc == 1 and "FAILED" in out
    until = await store.pool.fetchval("SELECT paused_until FROM syncd.provider_state WHERE provider = 'corp'")
    assert until is not None


async def test_invalid_config_exits_3_naming_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[providers]]\nname = "x"\ntype = "zitadel"\nbase_url = "https://x"\ntoken_env = "T"\nconcurency = 3\n'
    )
    rc, _, err = await syncd("status", "--config", str(path))
    assert rc == 3
    assert f"{path}: providers[0] (name='x').concurency: unknown key" in err


async def test_resync_without_a_selection_is_a_usage_error(tmp_path, db_url, zitadel):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    rc, _, err = await syncd("resync", "--config", cfg)
    assert rc == 2 and "--all, or --user" in err


async def test_demo_runs_twice_on_a_fresh_state_dir_and_shows_every_event_type(tmp_path):
    env = {"SYNCD_DATABASE_URL": ""}
    for _ in range(2):
        rc, out, err = await syncd("demo", "--state-dir", str(tmp_path / "state"), env=env, timeout=180)
        assert rc == 0, err
        assert "user.created=" in out and "user.updated=" in out and "user.deleted=" in out
        assert "resync with nothing changed upstream" in out
        assert "listing complete, listed 23, new 1, missing 2" in out


async def test_outbox_claim_marks_events_processed_and_prune_removes_old_ones(
    tmp_path, store, zitadel, db_url
):
    ids = zitadel.seed(5)
    cfg = write_config(tmp_path, db_url, zitadel.url, extra="user_ids = " + json.dumps(ids))
    assert (await syncd("resync", "--all", "--config", cfg))[0] == 0

    rc, out, _ = await syncd("outbox", "claim", "--limit", "3", "--peek", "--config", cfg)
    assert rc == 0 and len(out.splitlines()) == 3
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox WHERE processed_at IS NULL") == 5

    rc, out, _ = await syncd("outbox", "claim", "--limit", "3", "--config", cfg)
    claimed = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [c["type"] for c in claimed] == ["user.created"] * 3
    assert claimed[0]["aggregateid"].startswith("corp:") and claimed[0]["payload"]["after"]
    rc, out, _ = await syncd("outbox", "claim", "--limit", "10", "--config", cfg)
    assert len(out.splitlines()) == 2  # only the ones not yet processed

    await store.pool.execute("UPDATE syncd.outbox SET created_at = now() - interval '8 days'")
    rc, out, _ = await syncd("outbox", "prune", "--older-than", "7d", "--config", cfg)
    assert rc == 0 and "pruned 5 event(s)" in out and "sync run(s)" in out
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox") == 0


async def test_held_deletions_can_be_listed_approved_and_rejected(tmp_path, store, zitadel, db_url):
    ids = zitadel.seed(10)
    path = write_config(tmp_path, db_url, zitadel.url, extra="user_ids = " + json.dumps(ids))
    Path(path).write_text(
        Path(path).read_text().replace("max_delete_fraction = 1.0", "max_delete_fraction = 0.1")
    )
    assert (await syncd("resync", "--all", "--config", path))[0] == 0
    for uid in ids[:4]:
        del zitadel.users[uid]
    rc, out, _ = await syncd("resync", "--all", "--config", path)
    assert "held 4" in out
    rc, out, _ = await syncd("status", "--config", path)
    assert "HELD-DEL" in out

    rc, out, _ = await syncd("deletions", "list", "--provider", "corp", "--config", path)
    assert rc == 0 and all(uid in out for uid in ids[:4])
    rc, out, _ = await syncd("deletions", "approve", "--provider", "corp", "--config", path)
    assert rc == 0 and "4 user(s) deleted" in out
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox WHERE type = 'user.deleted'") == 4

    for uid in ids[4:8]:
        del zitadel.users[uid]
    await syncd("resync", "--all", "--config", path)
    rc, out, _ = await syncd("deletions", "reject", "--provider", "corp", "--config", path)
    assert rc == 0 and "rejected" in out
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users WHERE deleted_at IS NULL") == 6
    rc, out, _ = await syncd("deletions", "list", "--provider", "corp", "--config", path)
    assert "no deletions held" in out
    # remembered: more 404s don't bring the rejected deletions back
    await syncd("resync", "--all", "--config", path)
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users WHERE deleted_at IS NULL") == 6
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox WHERE type = 'user.deleted'") == 4
