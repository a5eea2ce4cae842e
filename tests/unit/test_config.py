"""Config errors name the file and the key; secrets are references only."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import config
from syncd.errors import ConfigError

BASE = {"name": "z", "type": "zitadel", "base_url": "https://z.example", "token_env": "Z_TOKEN"}


def load_text(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> config.Config:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return config.load(path, environ=environ or {})


def test_a_full_config_loads_with_durations_parsed(tmp_path):
    cfg = load_text(
        tmp_path,
        """
[database]
url = "postgresql://db/syncd"
[sync]
batch_size = 200
lease = "90s"
[[providers]]
name = "corp"
type = "zitadel"
base_url = "https://corp.zitadel.cloud/"
token_file = "/run/secrets/z"
interval = "15m"
concurrency = 16
user_ids = ["1", "2"]
ignore_fields = ["details.changeDate"]
""",
    )
    p = cfg.providers[0]
    assert p.interval == 900 and p.concurrency == 16 and p.base_url == "https://corp.zitadel.cloud"
    assert cfg.sync.lease == 90 and cfg.sync.batch_size == 200
    assert p.user_ids == ("1", "2") and p.ignore_fields == ("details.changeDate",)


async def test_per_request_limits_reach_the_http_client(monkeypatch):
    from syncd.sync.runtime import open_runtime

    monkeypatch.setenv("Z_TOKEN", "t")
    cfg = config.from_dict({"providers": [{**BASE, "request_timeout": "5s", "max_body_bytes": 4096}]})
    rt = open_runtime(cfg.providers[0])
    try:
        assert (rt.client.request_timeout, rt.client.max_body) == (5.0, 4096)
    finally:
        await rt.close()


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({**BASE, "tokne_env": "X"}, "providers[0] (name='z').tokne_env: unknown key"),
        ({**BASE, "interval": "soon"}, "'soon' is not a duration"),
        ({**BASE, "concurrency": 0}, "providers[0] (name='z').concurrency"),
        ({**BASE, "type": "okta"}, "unknown provider type"),
        ({**BASE, "base_url": "z.example"}, "base_url: must start with http"),
        ({k: v for k, v in BASE.items() if k != "token_env"}, "set token_env/token_file"),
        ({**BASE, "token_file": "/x"}, "set token_env or token_file, not both"),
        ({**BASE, "type": "wacht"}, "connection_id: Field required"),
        ({**BASE, "name": "Has Spaces"}, "providers[0] (name='Has Spaces').name"),
        ({**BASE, "max_body_bytes": 10}, "providers[0] (name='z').max_body_bytes"),
        ({**BASE, "request_timeout": "later"}, "'later' is not a duration"),
    ],
)
def test_bad_provider_settings_name_the_file_and_key(provider, message):
    with pytest.raises(ConfigError) as err:
        config.from_dict({"providers": [provider]}, source="/etc/syncd.toml")
    assert "/etc/syncd.toml: " in str(err.value)
    assert message in str(err.value)


def test_duplicate_provider_names_are_rejected():
    with pytest.raises(ConfigError, match="provider name 'z' is used twice"):
        config.from_dict({"providers": [BASE, BASE]})


def test_unknown_top_level_section_is_rejected():
    with pytest.raises(ConfigError, match="datbase: unknown key"):
        config.from_dict({"datbase": {"url": "x"}})


def test_invalid_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"syncd\.toml: not valid TOML"):
        load_text(tmp_path, "[database\nurl=1")


def test_a_named_config_file_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "missing.toml", environ={})


def test_environment_overrides_sections(tmp_path):
    cfg = load_text(
        tmp_path,
        '[database]\nurl = "postgresql://file/db"\n',
        environ={
            "SYNCD_DATABASE_URL": "postgresql://env/db",
            "SYNCD_LISTEN": "0.0.0.0:9000",
            "SYNCD_SYNC_BATCH_SIZE": "50",
        },
    )
    assert cfg.database.url == "postgresql://env/db"
    assert cfg.daemon.listen == "0.0.0.0:9000"
    assert cfg.sync.batch_size == 50


def test_secrets_resolve_from_env_and_file_and_missing_ones_are_named(tmp_path, monkeypatch):
    p = config.from_dict({"providers": [BASE]}).providers[0]
    monkeypatch.delenv("Z_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"token_env names \$Z_TOKEN, which is not set"):
        config.read_secret(p, "token_env", "token_file")
    monkeypatch.setenv("Z_TOKEN", "s3cr3t-value\n")
    assert config.read_secret(p, "token_env", "token_file") == "s3cr3t-value"

    (tmp_path / "tok").write_text("from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    pf = config.from_dict(
        {"providers": [{**BASE, "token_env": None, "token_file": "${CREDENTIALS_DIRECTORY}/tok"}]}
    ).providers[0]
    assert config.read_secret(pf, "token_env", "token_file") == "from-file"


def test_zitadel_client_credentials_need_a_secret():
    cc = {k: v for k, v in BASE.items() if k != "token_env"} | {"client_id": "syncd"}
    with pytest.raises(ConfigError, match="client_id needs client_secret_env or client_secret_file"):
        config.from_dict({"providers": [cc]})
    ok = config.from_dict({"providers": [cc | {"client_secret_env": "S"}]})
    assert ok.providers[0].client_id == "syncd"


# -- credentials never in clear (issue 13, item 12) ------------------------------------------


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        (
            {**BASE, "base_url": "http://z.example"},
            "providers[0] (name='z'): base_url: http:// would send the credentials (token_env) unencrypted",
        ),
        (
            {**BASE, "base_url": "http://10.0.0.7:8080"},
            "use https://, or set allow_insecure_http = true",
        ),
        (
            {
                "name": "f",
                "type": "fortanix",
                "base_url": "http://dsm.example",
                "email": "a@b",
                "password_file": "/run/p",
                "account_id": "acc",
            },
            "base_url: http:// would send the credentials (password_file)",
        ),
        (
            {**BASE, "base_url": "https://syncd:hunter2@z.example"},
            "providers[0] (name='z').base_url: must not hold credentials (user:password@)",
        ),
        ({**BASE, "base_url": "https://token@z.example"}, "base_url: must not hold credentials"),
        ({**BASE, "base_url": "https://[::1"}, "base_url: is not a valid URL"),
        ({**BASE, "base_url": "https://"}, "base_url: has no host"),
    ],
)
def test_credentials_are_refused_where_they_would_travel_in_clear(provider, message):
    with pytest.raises(ConfigError) as err:
        config.from_dict({"providers": [provider]}, source="/etc/syncd.toml")
    assert message in str(err.value)
    assert "hunter2" not in str(err.value)  # the refusal never prints the password


def test_allow_insecure_http_accepts_http_with_a_warning():
    p = config.from_dict(
        {"providers": [{**BASE, "base_url": "http://z.example", "allow_insecure_http": True}]}
    )
    [warning] = p.providers[0].warnings
    assert "base_url http://z.example sends credentials unencrypted" in warning
    assert "allow_insecure_http" in warning


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://127.8.9.10", "http://[::1]:9000/api", "http://localhost:80"]
)
def test_a_loopback_host_is_allowed_over_http_with_a_warning(url):
    p = config.from_dict({"providers": [{**BASE, "base_url": url}]}).providers[0]
    [warning] = p.warnings
    assert "sends credentials unencrypted (allowed: a loopback host)" in warning


def test_https_needs_no_warning_and_the_default_is_false():
    p = config.from_dict({"providers": [BASE]}).providers[0]
    assert p.warnings == () and p.allow_insecure_http is False


def test_the_startup_warning_is_logged(logs):
    from syncd.logs import warn_config

    cfg = config.from_dict({"providers": [{**BASE, "base_url": "http://127.0.0.1:1"}]})
    warn_config(cfg)
    [event] = [e for e in logs if e["event"] == "config.warning"]
    assert event["provider"] == "z" and event["log_level"] == "warning"
    assert "http://127.0.0.1:1 sends credentials unencrypted" in event["detail"]


@pytest.mark.parametrize("value", ["", ".", "..", " .. ", "a\nb"])
def test_a_path_id_that_names_no_resource_is_refused_naming_the_key(value):
    """connection_id and org_id go into the URL path: "", "." and ".." (which
    servers resolve as dot segments) and control characters are refused."""
    with pytest.raises(ConfigError, match="connection_id"):
        config.from_dict(
            {
                "providers": [
                    {
                        "name": "w",
                        "type": "wacht",
                        "base_url": "https://x",
                        "token_env": "T",
                        "connection_id": value,
                    }
                ]
            }
        )
    with pytest.raises(ConfigError, match="org_id"):
        config.from_dict(
            {
                "providers": [
                    {"name": "x", "type": "webex", "base_url": "https://x", "token_env": "T", "org_id": value}
                ]
            }
        )
