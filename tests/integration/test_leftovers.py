"""What syncd leaves behind: a test session's embedded PostgreSQL goes with
the session; the demo's last words are true (issue #19)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import textwrap
from pathlib import Path

import asyncpg
import pytest

from tests.integration.test_cli import syncd

REPO = Path(__file__).resolve().parents[2]


async def test_a_failing_session_on_the_embedded_server_leaves_no_syncd_test_pg_folder(tmp_path):
    """A tiny pytest session on the embedded path (no $SYNCD_TEST_DATABASE_URL)
    with a failing test: its temporary directory holds no server data after."""
    pytest.importorskip("pgserver")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    test_file = tmp_path / "test_tiny.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import asyncpg

            async def test_uses_the_server_then_fails(pg_url):
                conn = await asyncpg.connect(pg_url)
                assert await conn.fetchval("SELECT 1") == 1
                await conn.close()
                assert False, "failing on purpose"
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "SYNCD_TEST_DATABASE_URL"}
    env |= {"TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
    env.pop("XDG_RUNTIME_DIR", None)  # the embedded start sets it inside its folder, as in a fresh run
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "tests.integration.conftest",
        "--rootdir",
        str(REPO),
        "-c",
        str(REPO / "pyproject.toml"),
        str(test_file),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    text = out.decode()
    assert proc.returncode == 1, text  # the test ran, and failed
    assert "failing on purpose" in text
    assert list(tmp.glob("syncd-test-pg-*")) == [], text


async def test_demo_keep_serves_the_database_its_last_line_names_until_ctrl_c(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        "demo",
        "--keep",
        "--state-dir",
        str(tmp_path / "state"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SYNCD_DATABASE_URL": ""},
    )
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        async with asyncio.timeout(180):
            while not lines or "until Ctrl-C" not in lines[-1]:
                line = (await proc.stdout.readline()).decode()
                assert line, "".join(lines)
                lines.append(line)
        [url] = re.findall(r"psql '([^']+)'", "".join(lines[-3:]))
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM syncd.users") > 0
        finally:
            await conn.close()
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(url, timeout=5)


async def test_demo_without_keep_says_its_server_stops_with_it(tmp_path):
    rc, out, err = await syncd(
        "demo",
        "--users",
        "6",
        "--state-dir",
        str(tmp_path / "state"),
        env={"SYNCD_DATABASE_URL": ""},
        timeout=180,
    )
    assert rc == 0, err
    assert "psql '" not in out  # no recipe pointing at a server that is gone
    assert out.strip().splitlines()[-2:] == [
        "done. The embedded PostgreSQL stops with the demo; to look around in it, run",
        "`syncd demo --keep`: it stays up for psql until Ctrl-C.",
    ]
