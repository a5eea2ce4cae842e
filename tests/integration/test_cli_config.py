"""What an operator meets at the command line (issue #19): no silent embedded
database, config mistakes refused before anything runs, usage errors with
the usage code, errors that name what they are about. Real `syncd` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from prometheus_client import REGISTRY

from syncd.cli.command import EXIT_CONFIG, EXIT_FAIL, EXIT_OK, EXIT_USAGE
from tests.integration.conftest import TOKEN_ENV, free_port, spawn_syncd, wait_for
from tests.integration.test_cli import syncd, write_config

#: what the operator's shell might have set, unset for these runs
CLEAN = {"SYNCD_CONFIG": "", "SYNCD_DATABASE_URL": ""}


async def syncd_in(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`syncd` run in ``cwd`` with no config or database named by the environment."""
    environ = {k: v for k, v in os.environ.items() if k not in CLEAN}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_no_config_file_is_an_error_naming_where_it_looked_and_starts_no_database(tmp_path):
    for command in ("migrate", "check", "status", "run"):
        rc, out, err = await syncd_in(tmp_path, command)
        assert rc == EXIT_CONFIG, (command, out, err)
        assert "--config (not given), $SYNCD_CONFIG (not set), ./syncd.toml (not found)" in err, command
        assert "ok (0 provider(s))" not in out and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no .syncd/pg appeared in the current directory
    rc, _, err = await syncd_in(tmp_path, "status", env={"SYNCD_CONFIG": str(tmp_path / "gone.toml")})
    assert rc == EXIT_CONFIG and f"config file not found: {tmp_path / 'gone.toml'} ($SYNCD_CONFIG" in err


async def test_a_config_that_asks_for_the_embedded_database_gets_it_and_is_told_where(tmp_path):
    state = tmp_path / "state"
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'state_dir = "{state}"\n[database]\nembedded = true\n')
    rc, _, err = await syncd_in(tmp_path, "migrate", "--config", str(cfg))
    assert rc == EXIT_OK, err
    line = f"syncd: using the embedded PostgreSQL in {state / 'pg'} ([database] embedded = true in {cfg})"
    assert err.splitlines().count(line) == 1
    assert (state / "pg").is_dir()


async def test_config_is_accepted_before_the_command_too(tmp_path, db_url, zitadel):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    for args in (("--config", cfg, "status"), ("status", "--config", cfg)):
        rc, out, err = await syncd(*args)
        assert rc == EXIT_OK, err
        assert "corp" in out
    # given twice, the one after the command wins
    rc, _, err = await syncd("--config", str(tmp_path / "missing.toml"), "status", "--config", cfg)
    assert rc == EXIT_OK, err


async def test_an_unknown_provider_is_a_usage_error(tmp_path, db_url, zitadel):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    rc, _, err = await syncd("deletions", "list", "--provider", "nosuch", "--config", cfg)
    assert rc == EXIT_USAGE
    assert err.strip() == f"syncd: no provider named 'nosuch' in {cfg} (known: corp)"


async def test_a_database_that_does_not_answer_is_named_by_host_and_port(tmp_path, zitadel):
    port = free_port()
    cfg = write_config(tmp_path, f"postgresql://syncd:pw-s3cret@127.0.0.1:{port}/syncd", zitadel.url)
    rc, _, err = await syncd("status", "--config", cfg)
    assert rc == EXIT_FAIL
    assert f"PostgreSQL at 127.0.0.1:{port} unavailable" in err and "s3cret" not in err
    cfg = write_config(tmp_path, "postgresql://syncd@db.invalid:6543/syncd", zitadel.url)
    rc, _, err = await syncd("migrate", "--config", cfg)
    assert rc == EXIT_FAIL and "PostgreSQL at db.invalid:6543 unavailable" in err


async def test_dangerous_values_are_refused_before_anything_runs(tmp_path, db_url, zitadel):
    cfg = write_config(tmp_path, db_url, zitadel.url, extra="interval = 15")
    for command in ("check", "run"):
        rc, _, err = await syncd(command, "--config", cfg)
        assert rc == EXIT_CONFIG, err
        assert "providers[0] (name='corp').interval: a duration needs a unit: write \"15s\"" in err
    cfg = write_config(tmp_path, db_url, zitadel.url)
    for env, message in [
        ({"SYNCD_SYNC_LEASE": "0s"}, "$SYNCD_SYNC_LEASE: must be at least 1s (got '0s')"),
        ({"SYNCD_DAEMON_POLL_INTERVAL": "0s"}, "$SYNCD_DAEMON_POLL_INTERVAL: must be at least 100ms"),
        # `check` called this fine, and `run` died in a traceback
        ({"SYNCD_LISTEN": "localhost"}, "$SYNCD_LISTEN: 'localhost' must be HOST:PORT"),
    ]:
        for command in ("check", "run"):
            rc, _, err = await syncd(command, "--config", cfg, env=env)
            assert rc == EXIT_CONFIG and message in err, (command, err)
            assert "Traceback" not in err
    rc, _, err = await syncd("run", "--config", cfg, "--listen", "localhost")
    assert rc == EXIT_USAGE and err.startswith("syncd: --listen: 'localhost' must be HOST:PORT")


async def test_an_unknown_syncd_variable_is_warned_about_and_enum_values_take_any_case(
    tmp_path, db_url, zitadel
):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    rc, _, err = await syncd(
        "status", "--config", cfg, env={"SYNCD_SYNC_LEASEE": "5s", "SYNCD_LOGGING_LEVEL": "DEBUG"}
    )
    assert rc == EXIT_OK, err
    [warning] = [line for line in err.splitlines() if "SYNCD_SYNC_LEASEE" in line]
    assert warning.startswith(
        "syncd: warning: unknown environment variable SYNCD_SYNC_LEASEE, ignored (did you mean SYNCD_SYNC_LEASE?"
    )


async def test_a_bare_listen_port_serves_on_loopback_only(tmp_path, db_url, zitadel, store):
    port = free_port()
    cfg = write_config(tmp_path, db_url, zitadel.url)
    log = tmp_path / "run.log"
    with log.open("w") as out:
        proc = await spawn_syncd(
            "run",
            "--config",
            cfg,
            "--listen",
            str(port),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, TOKEN_ENV: zitadel.token, "SYNCD_LOGGING_FORMAT": "json"},
        )
    try:
        await wait_for(lambda: '"event": "daemon.started"' in log.read_text(), timeout=30)
        assert f'"listen": "127.0.0.1:{port}"' in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_held_deletions_are_counted_as_held_not_as_deleting(store, zitadel, make_config, engine_for):
    ids = zitadel.seed(10)
    engine = await engine_for(make_config(zitadel, sync={"max_delete_fraction": 0.1}))
    await store.add_targets("zitadel", ids)
    await engine.sync("zitadel")

    def counted(outcome: str) -> float:
        labels = {"provider": "zitadel", "outcome": outcome}
        return REGISTRY.get_sample_value("syncd_users_total", labels) or 0.0

    before = {o: counted(o) for o in ("deletion_held", "deleting", "deleted")}
    for uid in ids[:4]:
        del zitadel.users[uid]
    await store.make_due("zitadel", None)
    report = await engine.sync("zitadel")
    assert report.counts["held"] == 4
    assert counted("deletion_held") - before["deletion_held"] == 4
    assert counted("deleting") == before["deleting"] and counted("deleted") == before["deleted"]
