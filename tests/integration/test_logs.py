"""A log line never fails its caller: a broken stdout must not stop a pass or a shutdown."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from pathlib import Path

import pytest
import structlog

from syncd import logs
from syncd.logs import LineWriter
from tests.integration.conftest import TOKEN_ENV, DaemonProcess, free_port, spawn_syncd, wait_for


class Broken(io.StringIO):
    """A stream whose every write fails as a closed pipe (or disk) does."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc
        self.attempts = 0

    def write(self, s: str) -> int:
        self.attempts += 1
        raise self.exc


@pytest.fixture(autouse=True)
def _restore_structlog():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.parametrize(
    "exc", [BrokenPipeError(32, "Broken pipe"), OSError(28, "No space"), ValueError("closed")]
)
def test_a_failed_write_moves_the_lines_to_the_fallback_once(exc):
    broken, fallback = Broken(exc), io.StringIO()
    writer = LineWriter(broken, fallback=fallback)
    writer.info("first")
    writer.error("second")
    assert broken.attempts == 1  # given up after its first failure
    lines = fallback.getvalue().splitlines()
    assert lines[0].startswith("syncd: cannot write logs to") and lines[1:] == ["first", "second"]


def test_when_the_fallback_fails_too_lines_are_dropped_without_an_error():
    broken, fallback = Broken(BrokenPipeError(32, "Broken pipe")), Broken(BrokenPipeError(32, "Broken pipe"))
    writer = LineWriter(broken, fallback=fallback)
    for _ in range(3):
        writer.info("nobody reads this")
    assert broken.attempts == 1 and fallback.attempts == 1


def test_a_line_the_stream_cannot_encode_is_escaped_not_dropped():
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    writer = LineWriter(stream, fallback=io.StringIO())
    writer.info("user Zoë renamed")
    writer.info("next")
    stream.seek(0)
    assert stream.read().splitlines() == ["user Zo\\xeb renamed", "next"]


def test_a_pipe_whose_reader_is_gone_is_pointed_at_devnull():
    """Python flushes stdout at exit; a flush that fails there makes the exit
    status 120, so the broken stream's descriptor is pointed at /dev/null."""
    r, w = os.pipe()
    stream = os.fdopen(w, "w", buffering=1)
    os.close(r)
    try:
        writer = LineWriter(stream, fallback=io.StringIO())
        writer.info("x" * 100_000)  # more than any pipe buffer, from a partly written line
        stream.write("later\n")
        stream.flush()  # lands in /dev/null: no BrokenPipeError
    finally:
        stream.close()


def test_configured_logging_survives_a_broken_stream(monkeypatch):
    fallback = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fallback)  # where configure falls back to
    logs.configure("info", "json", stream=Broken(BrokenPipeError(32, "Broken pipe")))
    structlog.get_logger("t").info("still.here", access_token="tok-abcdef")
    structlog.get_logger("t").info("and.here")
    text = fallback.getvalue()
    assert text.startswith("syncd: cannot write logs to")
    assert '"event": "still.here"' in text and '"event": "and.here"' in text
    assert "tok-abcdef" not in text


# -- `syncd run` with a broken stdout ---------------------------------------------------------


def _config(tmp_path: Path, db_url: str, fake_url: str, port: int) -> Path:
    cfg = tmp_path / "broken.toml"
    cfg.write_text(
        f"""
[database]
url = "{db_url}"
[daemon]
listen = "127.0.0.1:{port}"
replica = "broken"
poll_interval = "200ms"
[logging]
format = "json"
[sync]
lease = "3s"
[[providers]]
name = "corp"
type = "zitadel"
base_url = "{fake_url}"
token_env = "{TOKEN_ENV}"
interval = "1h"
"""
    )
    return cfg


@pytest.mark.parametrize("stderr_too", [False, True], ids=["stderr-works", "stderr-broken-too"])
async def test_a_daemon_whose_stdout_reader_is_gone_still_syncs_and_stops_on_sigterm(
    tmp_path, store, zitadel, db_url, stderr_too
):
    port = free_port()
    cfg = _config(tmp_path, db_url, zitadel.url, port)
    r, w = os.pipe()
    err_path = tmp_path / "stderr.log"
    with err_path.open("w") as err_file:
        proc = await spawn_syncd(
            "run",
            "--config",
            str(cfg),
            stdout=w,
            stderr=w if stderr_too else err_file,
            env={**os.environ, TOKEN_ENV: zitadel.token},
        )
    os.close(w)
    daemon = DaemonProcess(proc, port, err_path)
    try:
        await wait_for(daemon.ready, timeout=30)
        os.close(r)  # the reader of stdout is gone: the next log line is a broken pipe

        ids = zitadel.seed(5)
        await store.add_targets("corp", ids)
        # the pass logs (to a broken pipe) and still writes every user
        await wait_for(lambda: _count(store, "SELECT count(*) FROM syncd.users", 5), timeout=30)
        await wait_for(lambda: _count(store, "SELECT count(*) FROM syncd.sync_runs WHERE status = 'ok'", 1))

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if not stderr_too:
        text = err_path.read_text()
        assert "syncd: cannot write logs to <stdout>" in text
        assert "daemon.stopped" in text  # the lines went on, to stderr


async def _count(store, sql: str, expected: int) -> bool:
    return await store.pool.fetchval(sql) >= expected
