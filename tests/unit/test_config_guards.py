"""Values an operator can get dangerously wrong are refused at load, with the
fix in the message; environment overrides are named as such (issue #19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import config
from syncd.configbase import listen_address
from syncd.errors import ConfigError, ConfigNotFound, UnknownProvider
from syncd.store.database import server_address

BASE = {"name": "z", "type": "zitadel", "base_url": "https://z.example", "token_env": "Z_TOKEN"}


def provider(**over: object) -> dict[str, object]:
    return {"providers": [{**BASE, **over}]}


def error(data: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as err:
        config.from_dict(data, source="syncd.toml")
    return str(err.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (provider(interval=15), "providers[0] (name='z').interval: a duration needs a unit: write \"15s\""),
        (provider(interval="15"), 'write "15s"'),
        (provider(interval="0s"), "interval: must be at least 1s (got '0s')"),
        (provider(interval="500ms"), "interval: must be at least 1s"),
        (provider(discover="0s"), "discover: must be at least 1s"),
        (provider(retry_after_cap="0s"), "retry_after_cap: must be at least 1s"),
        (provider(read_timeout="0s"), "read_timeout: must be at least 1ms"),
        (provider(feed_interval="10ms"), "feed_interval: must be at least 100ms"),
        ({"sync": {"lease": "0s"}}, "sync.lease: must be at least 1s (got '0s')"),
        ({"sync": {"lease": 120}}, 'sync.lease: a duration needs a unit: write "120s"'),
        ({"sync": {"delete_confirm_after": "0s"}}, "sync.delete_confirm_after: must be at least 1s"),
        ({"sync": {"error_retry": "0s"}}, "sync.error_retry: must be at least 10ms"),
        ({"daemon": {"poll_interval": "0s"}}, "daemon.poll_interval: must be at least 100ms"),
        ({"daemon": {"poll_interval": True}}, "expected a duration with a unit"),
    ],
)
def test_dangerous_or_unitless_durations_are_refused_with_the_fix(data, message):
    assert message in error(data)


def test_the_short_durations_tests_and_the_demo_use_are_accepted():
    cfg = config.from_dict(
        {
            "sync": {"lease": "1s", "delete_confirm_after": "1s", "error_retry": "10ms"},
            "daemon": {"poll_interval": "100ms", "shutdown_grace": "0s"},
            **provider(
                interval="1s",
                backoff_base="10ms",
                backoff_cap="100ms",
                circuit_cooldown="100ms",
                read_timeout="300ms",
                feed_interval="300ms",
                feed_overlap="0s",
            ),
        }
    )
    assert cfg.sync.lease == 1 and cfg.daemon.poll_interval == 0.1
    assert cfg.providers[0].backoff_base == 0.01 and cfg.providers[0].feed_overlap == 0


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("9464", "127.0.0.1:9464"),
        (":9464", "127.0.0.1:9464"),
        ("0.0.0.0:9464", "0.0.0.0:9464"),
        ("localhost:9464", "localhost:9464"),
        ("[::]:9464", "[::]:9464"),
        (" 127.0.0.1:09464 ", "127.0.0.1:9464"),
    ],
)
def test_a_listen_address_is_normalized_and_a_bare_port_is_loopback(value, address):
    assert listen_address(value) == address
    assert config.from_dict({"daemon": {"listen": value}}).daemon.listen == address


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("localhost", "must be HOST:PORT"),
        ("127.0.0.1:http", "the port must be a number"),
        ("127.0.0.1:70000", "the port must be a number from 1 to 65535"),
        ("::1:9464", "an IPv6 address goes in brackets"),
        ("[nope]:9464", "is not an IPv6 address"),
        ("bad host:9464", "is not a host name or address"),
    ],
)
def test_a_listen_address_that_cannot_be_served_is_refused_at_load(value, message):
    with pytest.raises(ValueError, match=message):
        listen_address(value)
    assert message in error({"daemon": {"listen": value}})


def load(tmp_path: Path, text: str, environ: dict[str, str]) -> config.Config:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return config.load(path, environ=environ)


def test_an_error_in_an_environment_override_names_the_variable_not_the_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "", {"SYNCD_LISTEN": "localhost"})
    assert str(err.value).startswith("$SYNCD_LISTEN: 'localhost' must be HOST:PORT")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "[sync]\nlease = '2m'\n", {"SYNCD_SYNC_LEASE": "15"})
    assert str(err.value).startswith('$SYNCD_SYNC_LEASE: a duration needs a unit: write "15s"')
    # a bad value in the file is still the file's
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "[sync]\nlease = 15\n", {})
    assert str(err.value).startswith(f"{tmp_path / 'syncd.toml'}: sync.lease:")


def test_enum_values_are_read_in_any_case(tmp_path):
    cfg = load(
        tmp_path,
        '[[providers]]\nname = "z"\ntype = "zitadel"\nbase_url = "https://z.example"\n'
        'token_env = "Z_TOKEN"\nrefresh = "BY_ID"\n',
        {"SYNCD_LOGGING_LEVEL": "DEBUG", "SYNCD_LOGGING_FORMAT": "Json"},
    )
    assert (cfg.logging.level, cfg.logging.format, cfg.providers[0].refresh) == ("debug", "json", "by_id")
    assert load(tmp_path, "", {"SYNCD_LOG_LEVEL": "WARNING"}).logging.level == "warning"


def test_an_unknown_syncd_variable_is_one_warning_naming_it_and_the_known_ones(tmp_path):
    cfg = load(
        tmp_path,
        '[[providers]]\nname = "z"\ntype = "zitadel"\nbase_url = "https://z.example"\n'
        'token_env = "SYNCD_CORP_TOKEN"\n',
        {
            "SYNCD_SYNC_LEASEE": "5s",
            "SYNCD_CORP_TOKEN": "referenced by token_env: known",
            "SYNCD_TEST_DATABASE_URL": "the test suite's own",
            "SYNCD_LISTEN": "127.0.0.1:9000",
            "OTHER": "not ours",
        },
    )
    [note] = cfg.notes
    assert note.startswith(
        "unknown environment variable SYNCD_SYNC_LEASEE, ignored (did you mean SYNCD_SYNC_LEASE?"
    )
    assert "known: " in note and "SYNCD_DATABASE_URL" in note and "SYNCD_LISTEN" in note
    assert cfg.sync.lease == 120  # the typo changed nothing


def test_no_config_file_is_an_error_naming_every_place_looked_at(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigNotFound) as err:
        config.load(environ={})
    message = str(err.value)
    assert "--config (not given)" in message and "$SYNCD_CONFIG (not set)" in message
    assert "./syncd.toml (not found)" in message
    with pytest.raises(ConfigNotFound, match=r"config file not found: elsewhere.toml \(\$SYNCD_CONFIG"):
        config.load(environ={"SYNCD_CONFIG": "elsewhere.toml"})
    (tmp_path / "syncd.toml").mkdir()
    with pytest.raises(ConfigNotFound, match=r"syncd\.toml \(a directory\)"):
        config.load(environ={})


def test_no_config_file_but_a_database_url_in_the_environment_is_a_config(tmp_path, monkeypatch):
    """A Kubernetes Job's `syncd migrate` with only $SYNCD_DATABASE_URL: the
    environment is the whole config, never an embedded database; a config
    file named but missing stays an error."""
    monkeypatch.chdir(tmp_path)
    cfg = config.load(environ={"SYNCD_DATABASE_URL": "postgresql://db/x"})
    assert cfg.source == "<environment>" and not cfg.database.uses_embedded
    with pytest.raises(ConfigNotFound):
        config.load("gone.toml", environ={"SYNCD_DATABASE_URL": "postgresql://db/x"})
    with pytest.raises(ConfigNotFound):
        config.load(environ={"SYNCD_CONFIG": "gone.toml", "SYNCD_DATABASE_URL": "postgresql://db/x"})


def test_an_existing_config_without_a_url_asks_for_the_embedded_database(tmp_path):
    assert load(tmp_path, "", {}).database.uses_embedded
    assert load(tmp_path, "[database]\nembedded = true\n", {}).database.uses_embedded
    assert not load(tmp_path, "", {"SYNCD_DATABASE_URL": "postgresql://db/x"}).database.uses_embedded
    assert "set url or embedded = true, not both" in error(
        {"database": {"url": "postgresql://db/x", "embedded": True}}
    )
    assert "embedded = false needs a url" in error({"database": {"embedded": False}})


def test_an_unknown_provider_is_a_usage_error_naming_the_known_ones():
    cfg = config.from_dict(provider(), source="syncd.toml")
    with pytest.raises(UnknownProvider, match=r"no provider named 'nosuch' in syncd.toml \(known: z\)"):
        cfg.provider("nosuch")


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://syncd:s3cret@db.example:6543/syncd", "db.example:6543"),
        ("postgresql://syncd@db.example/syncd", "db.example:5432"),
        ("postgresql://postgres:@/syncd_demo?host=/tmp/pg", "socket /tmp/pg port 5432"),
        ("postgresql://u@[::1]:5433/x", "[::1]:5433"),
    ],
)
def test_a_database_error_names_the_server_never_the_password(dsn, shown, monkeypatch):
    monkeypatch.delenv("PGHOST", raising=False)
    monkeypatch.delenv("PGPORT", raising=False)
    assert server_address(dsn) == shown
    assert "s3cret" not in server_address(dsn)
