"""What an operator meets at the command line (issue #19): ordinary mistakes
give one clear line and the documented exit code, never a traceback; exit
codes tell a clean resync from one that needs a look; destructive
maintenance asks first. Every test runs the real ``syncd`` entry point."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import socket
import sys
from pathlib import Path

from tests.integration.test_cli import syncd, write_config

PYTHON_SYNCD = (sys.executable, "-m", "syncd")


async def syncd_to_closed_pipe(*args: str, timeout: float = 60) -> tuple[int, str]:
    """Run syncd with stdout a pipe nobody reads any more (``syncd … | head``
    after head exited): returns the exit code and stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = await asyncio.create_subprocess_exec(
            *PYTHON_SYNCD, *args, stdout=write_end, stderr=asyncio.subprocess.PIPE
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_a_reader_that_went_away_ends_each_command_quietly_with_141(tmp_path, store, zitadel, db_url):
    ids = zitadel.seed(3)
    cfg = write_config(tmp_path, db_url, zitadel.url, extra=f"user_ids = {json.dumps(ids)}")
    assert (await syncd("resync", "--all", "--config", cfg))[0] == 0
    zitadel.modify(ids[0])  # so that the dry run has a patch to print
    for command in (
        ("status",),
        ("targets", "list"),
        ("check",),
        ("resync", "--provider", "corp", "--user", ids[0], "--dry-run"),
    ):
        rc, err = await syncd_to_closed_pipe(*command, "--config", cfg)
        assert rc == 141, (command, err)
        assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


async def test_ordinary_mistakes_get_one_line_and_the_usage_code(tmp_path, db_url, zitadel):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    cases = {
        ("outbox", "prune", "--older-than", "7days"): "argument --older-than: '7days' is not a duration",
        ("outbox", "prune", "--older-than", "7"): "'7' needs a unit",
        ("outbox", "claim", "--limit", "-1"): "argument --limit: must be at least 1, not -1",
        ("targets", "list", "--limit", "0"): "argument --limit: must be at least 1",
        ("targets", "add", "--provider", "corp", "--file", "/nonexistent.txt"): (
            "syncd targets add: --file /nonexistent.txt: No such file or directory"
        ),
    }
    for args, message in cases.items():
        rc, _, err = await syncd(*args, "--config", cfg)
        assert rc == 2, (args, err)
        assert message in err, (args, err)
        assert "Traceback" not in err, err
        # the line that says what is wrong (argparse puts its usage lines before it)
        assert err.strip().splitlines()[-1].count(message.split(":")[0]) >= 1


async def test_run_on_a_port_in_use_says_so_naming_the_address(tmp_path, db_url, zitadel):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        rc, out, err = await syncd("run", "--listen", address, "--config", cfg, timeout=60)
    assert rc == 1, err
    assert "Traceback" not in err + out
    assert f"syncd: cannot serve /healthz and /metrics on {address}: Address already in use" in err
    assert len(err.strip().splitlines()) == 1, err
    assert any(json.loads(line)["event"] == "admin.listen_failed" for line in out.splitlines()), out


async def test_resync_exit_code_tells_clean_from_failed_from_needs_attention(
    tmp_path, store, zitadel, db_url
):
    ids = zitadel.seed(10)
    path = write_config(tmp_path, db_url, zitadel.url, extra=f"user_ids = {json.dumps(ids)}")
    rc, out, err = await syncd("resync", "--all", "--config", path)
    assert rc == 0, err
    assert "needs attention" not in err

    # two users gone upstream: their 404s count as "not found" → 4, saying why
    for uid in ids[:2]:
        del zitadel.users[uid]
    rc, out, err = await syncd("resync", "--all", "--config", path)
    assert rc == 4, err
    assert "not found 2" in out
    assert "syncd resync: finished, needs attention: corp: 2 user(s) not found" in err

    # deleted now: asked again, they still answer 404, as expected, so that is no news: 0
    rc, out, err = await syncd("resync", "--all", "--config", path)
    assert rc == 0, err
    assert "not found 2" in out and "needs attention" not in err

    # a pass that would delete too many holds the deletions: 4 again, and says where to look
    Path(path).write_text(
        Path(path).read_text().replace("max_delete_fraction = 1.0", "max_delete_fraction = 0.1")
    )
    for uid in ids[2:6]:
        del zitadel.users[uid]
    rc, out, err = await syncd("resync", "--all", "--config", path)
    assert rc == 4, err
    assert "held 4" in out and "deletion(s) held (see `syncd deletions list`)" in err

    # a failure wins: 1
    zitadel.inject("500", times=None)
    rc, out, err = await syncd("resync", "--provider", "corp", "--user", ids[8], "--config", path)
    assert rc == 1, err


async def test_resync_of_a_typo_says_not_found_exits_4_and_leaves_no_target(tmp_path, store, zitadel, db_url):
    ids = zitadel.seed(2)
    path = write_config(tmp_path, db_url, zitadel.url)
    rc, _, err = await syncd("resync", "--provider", "corp", "--user", "no-such-user", "--config", path)
    assert rc == 4, err
    assert "corp: user no-such-user not found at the provider (not a target: nothing kept)" in err
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.targets") == 0

    # a user that exists and is not a target: synced once (mirror and event written), said so
    rc, _, err = await syncd("resync", "--provider", "corp", "--user", ids[0], "--config", path)
    assert rc == 0, err
    assert f"corp: user {ids[0]} synced once; it is not a target" in err and "--add" in err
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.targets") == 0
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.users WHERE user_id = $1", ids[0]) == 1
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox WHERE type = 'user.created'") == 1

    # --add makes it a target; a target stays one whatever it answers
    rc, _, err = await syncd("resync", "--provider", "corp", "--user", ids[1], "--add", "--config", path)
    assert rc == 0, err
    assert "not a target" not in err
    rc, _out, err = await syncd("resync", "--provider", "corp", "--user", ids[1], "--config", path)
    assert rc == 0 and "not a target" not in err
    assert await store.pool.fetch("SELECT user_id FROM syncd.targets") == [(ids[1],)]

    # --enqueue can't sync a non-target (daemons sync targets only): a usage error, nothing added
    rc, _, err = await syncd("resync", "--provider", "corp", "--user", "typo", "--enqueue", "--config", path)
    assert rc == 2 and "typo is not a target of corp" in err and "--add" in err
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.targets") == 1


async def test_migrate_says_which_migrations_it_applied_or_that_none_were_due(
    tmp_path, empty_db_url, zitadel
):
    from syncd.store import migrations

    versions = [m.version for m in migrations()]
    path = write_config(tmp_path, empty_db_url, zitadel.url)
    rc, out, err = await syncd("migrate", "--config", path)
    assert rc == 0, err
    assert out.startswith(f"applied {len(versions)} migration(s): {versions[0]}")
    assert versions[-1] in out
    rc, out, err = await syncd("migrate", "--config", path)
    assert rc == 0, err
    assert out.strip() == f"schema already current (latest: {versions[-1]}); nothing applied"


async def test_prune_that_reaches_recent_history_needs_yes_without_a_terminal(
    tmp_path, store, zitadel, db_url
):
    ids = zitadel.seed(3)
    path = write_config(tmp_path, db_url, zitadel.url, extra=f"user_ids = {json.dumps(ids)}")
    assert (await syncd("resync", "--all", "--config", path))[0] == 0
    await store.pool.execute("UPDATE syncd.outbox SET processed_at = now()")
    runs = await store.pool.fetchval("SELECT count(*) FROM syncd.sync_runs")

    for args in (("--older-than", "0s"), ("--older-than", "12h"), ("--include-unprocessed",)):
        rc, out, err = await syncd("outbox", "prune", *args, "--config", path)
        assert rc == 2, (args, err)
        assert "nothing done: pass --yes to do it" in err
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox") == 3
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.sync_runs") == runs

    # routine retention (a day or more, processed events) runs as a timer would run it
    rc, out, err = await syncd("outbox", "prune", "--older-than", "7d", "--config", path)
    assert rc == 0 and "pruned 0 event(s)" in out, err

    rc, out, err = await syncd("outbox", "prune", "--older-than", "0s", "--yes", "--config", path)
    assert rc == 0 and "pruned 3 event(s)" in out, err
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox") == 0


async def test_prune_asks_on_a_terminal_and_only_yes_goes_ahead(tmp_path, store, zitadel, db_url):
    ids = zitadel.seed(2)
    path = write_config(tmp_path, db_url, zitadel.url, extra=f"user_ids = {json.dumps(ids)}")
    assert (await syncd("resync", "--all", "--config", path))[0] == 0

    async def prune_answering(answer: str) -> tuple[int, str]:
        leader, follower = pty.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                *PYTHON_SYNCD,
                "outbox",
                "prune",
                "--older-than",
                "0s",
                "--include-unprocessed",
                "--config",
                path,
                stdin=follower,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            os.write(leader, answer.encode() + b"\n")
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            os.close(follower)
            os.close(leader)
        assert proc.returncode is not None
        return proc.returncode, out.decode() + err.decode()

    rc, text = await prune_answering("n")
    assert rc == 2 and "Go ahead? [y/N]" in text and "nothing done" in text
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox") == 2
    rc, text = await prune_answering("y")
    assert rc == 0 and "pruned 2 event(s)" in text
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.outbox") == 0


async def test_a_long_retry_after_during_resync_is_shown_and_pause_clear_ends_it(
    tmp_path, store, zitadel, db_url
):
    ids = zitadel.seed(5)
    path = write_config(tmp_path, db_url, zitadel.url, extra=f"user_ids = {json.dumps(ids)}")
    zitadel.inject("429", retry_after="600", times=1)
    proc = await asyncio.create_subprocess_exec(
        *PYTHON_SYNCD,
        "resync",
        "--all",
        "--config",
        path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        # without a terminal: one line, while the resync waits
        line = ""
        async with asyncio.timeout(60):
            while "paused" not in line:
                line = (await proc.stderr.readline()).decode()
                assert line, "resync ended without showing the pause"
        assert line.startswith("corp: paused by the provider until ")
        assert "UTC (HTTP 429, Retry-After); `syncd pause clear --provider corp` ends it" in line
        assert proc.returncode is None  # still waiting

        rc, out, err = await syncd("pause", "clear", "--provider", "corp", "--config", path)
        assert rc == 0 and "cleared" in out, err
        out_b, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert "created 5" in out_b.decode()


async def test_json_output_of_status_targets_list_and_check_has_stable_keys(tmp_path, store, zitadel, db_url):
    ids = zitadel.seed(3)
    path = write_config(tmp_path, db_url, zitadel.url, extra=f"user_ids = {json.dumps(ids)}")
    assert (await syncd("resync", "--all", "--config", path))[0] == 0

    rc, out, err = await syncd("status", "--json", "--config", path)
    assert rc == 0, err
    status = json.loads(out)
    assert set(status) == {"providers", "discovery", "runs", "failing", "quarantined"}
    [corp] = status["providers"]
    assert corp["provider"] == "corp" and corp["targets"] == 3 and corp["mirrored"] == 3
    assert corp["paused_until"] is None and corp["circuit"] == "closed"
    assert set(corp) >= {"due", "leased", "deleted", "errors", "held_deletions", "last_sync", "pause_reason"}
    [run] = status["runs"]
    assert run["status"] == "ok" and run["created"] == 3 and run["started_at"].endswith("+00:00")

    rc, out, err = await syncd("targets", "list", "--json", "--limit", "2", "--config", path)
    assert rc == 0, err
    listed = json.loads(out)
    assert listed["total"] == 3 and listed["shown"] == 2
    assert [t["user_id"] for t in listed["targets"]] == sorted(ids)[:2]
    assert set(listed["targets"][0]) == {
        "provider",
        "user_id",
        "next_sync_at",
        "last_synced_at",
        "last_status",
        "last_error",
        "attempts",
        "leased_by",
    }

    rc, out, err = await syncd("check", "--json", "--config", path)
    assert rc == 0, err
    check = json.loads(out)
    assert check["ok"] is True and check["database"] == {"ok": True, "error": None}
    assert check["config"] == {"path": path, "providers": 1}
    [provider] = check["providers"]
    assert provider["name"] == "corp" and provider["type"] == "zitadel" and provider["status"] == "ok"
    assert set(provider) == {"name", "type", "ok", "status", "detail", "url"}


async def test_targets_list_says_when_it_cut_the_list_short(tmp_path, store, zitadel, db_url):
    path = write_config(tmp_path, db_url, zitadel.url)
    await store.add_targets("corp", [f"u{n:04}" for n in range(2345)])
    rc, out, err = await syncd("targets", "list", "--limit", "100", "--config", path)
    assert rc == 0, err
    assert len(out.splitlines()) == 101  # the header and 100 rows
    assert "showing 100 of 2,345 targets; use --limit 2345 to see them all" in err
    rc, out, err = await syncd("targets", "list", "--config", path)
    assert "showing 1,000 of 2,345" in err
    rc, out, err = await syncd("targets", "list", "--limit", "5000", "--config", path)
    assert rc == 0 and "showing" not in err
