"""Configuration: one TOML file, validated, every section key overridable by env.

Validation is pydantic's (strict about unknown keys): it already reports
every bad key with its location, which we turn into ``file: key: problem``
lines an operator can act on. Secrets are only ever *references*
(``token_env``/``token_file``); they are resolved when used, never stored.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, ValidationError, field_validator

from syncd.configbase import Durations, Model, ProviderBase, Seconds, read_secret, remember
from syncd.errors import ConfigError
from syncd.providers.registry import PROVIDER_TYPES, REGISTRY

DEFAULT_CONFIG = "syncd.toml"


class DatabaseConfig(Model):
    url: str | None = None
    #: a file holding the URL (systemd LoadCredential=, a mounted Secret)
    url_file: str | None = None
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=10, ge=1)

    def resolved_url(self) -> str | None:
        """The URL, reading ``url_file`` if that is how it was given."""
        if self.url or not self.url_file:
            return self.url
        path = Path(os.path.expandvars(os.path.expanduser(self.url_file)))
        try:
            return remember(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(f"[database] url_file {str(path)!r}: {exc.strerror}") from exc


class SyncConfig(Durations):
    _duration_fields = ("lease", "delete_confirm_after", "error_retry")
    #: targets leased per round trip
    batch_size: int = Field(default=500, ge=1, le=10_000)
    #: how long a replica holds a leased target before others may take it
    lease: Seconds = 120.0
    #: 404s in a row (at least ``delete_confirm_after`` apart) before a user is deleted
    delete_confirmations: int = Field(default=2, ge=1)
    delete_confirm_after: Seconds = 60.0
    #: a pass that would delete more than this share of a provider's users is held
    max_delete_fraction: float = Field(default=0.1, ge=0, le=1)
    max_delete_count: int | None = Field(default=None, ge=0)
    #: a failed target is retried after this long (never later than its interval)
    error_retry: Seconds = 60.0
    #: a user whose document keeps failing (too large, too deep, refused by
    #: PostgreSQL) this many times in a row is quarantined: shown in `syncd
    #: status` and retried only at its provider's interval
    quarantine_after: int = Field(default=3, ge=1)
    #: the most JSON one write statement carries; a batch over it is written in
    #: parts (PostgreSQL refuses a jsonb value over 256 MiB)
    write_batch_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024, le=200 * 1024 * 1024)


class DaemonConfig(Durations):
    _duration_fields = ("shutdown_grace", "poll_interval")
    listen: str = "127.0.0.1:9464"
    shutdown_grace: Seconds = 30.0
    poll_interval: Seconds = 1.0
    replica: str | None = None


class LoggingConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class OutboxConfig(Durations):
    """Retention the daemon applies itself (no cron job needed)."""

    _duration_fields = ("retention",)
    #: delete events older than this (and finished sync runs); None: keep all
    retention: Annotated[float, Field(gt=0)] | None = None
    #: how consumers read the outbox: "claim" (they mark rows processed: only
    #: processed events are pruned) or "stream" (Debezium or another logical
    #: replication reader, which marks none: events are pruned by age alone)
    consumer: Literal["claim", "stream"] = "claim"


if TYPE_CHECKING:
    ProviderConfig = ProviderBase
else:
    #: a ``[[providers]]`` table: one of the registered types' models, by ``type``
    ProviderConfig = Annotated[
        Union[tuple(kind.config for kind in REGISTRY.values())],  # noqa: UP007 - built from the registry
        Field(discriminator="type"),
    ]


class Config(Model):
    database: DatabaseConfig = DatabaseConfig()
    sync: SyncConfig = SyncConfig()
    daemon: DaemonConfig = DaemonConfig()
    logging: LoggingConfig = LoggingConfig()
    outbox: OutboxConfig = OutboxConfig()
    state_dir: str = ".syncd"
    providers: tuple[ProviderConfig, ...] = ()

    #: where this config came from, for messages
    source: str = Field(default="<defaults>", exclude=True)

    @field_validator("providers")
    @classmethod
    def _unique_names(cls, v: tuple[ProviderBase, ...]) -> tuple[ProviderBase, ...]:
        seen: set[str] = set()
        for p in v:
            if p.name in seen:
                raise ValueError(f"provider name {p.name!r} is used twice")
            seen.add(p.name)
        return v

    def provider(self, name: str) -> ProviderBase:
        for p in self.providers:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.providers) or "none configured"
        raise ConfigError(f"{self.source}: no provider named {name!r} (known: {known})")


_SECTIONS: dict[str, type[BaseModel]] = {
    "database": DatabaseConfig,
    "sync": SyncConfig,
    "daemon": DaemonConfig,
    "logging": LoggingConfig,
    "outbox": OutboxConfig,
}
#: short aliases operators expect
_ENV_ALIASES = {"SYNCD_LISTEN": ("daemon", "listen"), "SYNCD_REPLICA": ("daemon", "replica")}


def _env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``SYNCD_<SECTION>_<KEY>`` overrides ``[section] key`` (systemd and
    Kubernetes set environment, not flags)."""
    for section, model in _SECTIONS.items():
        for key in model.model_fields:
            env = f"SYNCD_{section.upper()}_{key.upper()}"
            if env in environ:
                data.setdefault(section, {})[key] = environ[env]
    for env, (section, key) in _ENV_ALIASES.items():
        if env in environ:
            data.setdefault(section, {})[key] = environ[env]
    if "SYNCD_STATE_DIR" in environ:
        data["state_dir"] = environ["SYNCD_STATE_DIR"]
    return data


def default_path(environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """The config path to use, and whether the operator named it explicitly."""
    environ = os.environ if environ is None else environ
    if environ.get("SYNCD_CONFIG"):
        return environ["SYNCD_CONFIG"], True
    return DEFAULT_CONFIG, False


def load(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate a config file.

    A missing *default* ``./syncd.toml`` is an empty config (so ``migrate``
    works with only ``$SYNCD_DATABASE_URL``); a missing named file is an error.
    """
    environ = os.environ if environ is None else environ
    explicit = path is not None
    if path is None:
        path, explicit = default_path(environ)
    p = Path(path)
    data: dict[str, Any] = {}
    if p.exists():
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    elif explicit:
        raise ConfigError(f"{p}: config file not found")
    return from_dict(_env_overrides(data, environ), source=str(p))


def from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Config:
    try:
        return Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data, source)) from None


def _describe(exc: ValidationError, data: Mapping[str, Any], source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        # a tagged union adds the tag as a path element: providers.0.zitadel.key
        if len(loc) >= 3 and loc[0] == "providers" and loc[2] in PROVIDER_TYPES:
            del loc[2]
        key = _render_loc(loc, data)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown provider type (use one of: {', '.join(PROVIDER_TYPES)})"
        elif err["type"] == "union_tag_not_found":
            msg = f"missing 'type' (one of: {', '.join(PROVIDER_TYPES)})"
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def _render_loc(loc: list[Any], data: Mapping[str, Any]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            if i == 1 and loc[0] == "providers":
                try:
                    name = data["providers"][part].get("name")
                except (KeyError, IndexError, AttributeError, TypeError):
                    name = None
                if name:
                    out += f" (name={name!r})"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


__all__ = [
    "PROVIDER_TYPES",
    "Config",
    "DaemonConfig",
    "DatabaseConfig",
    "LoggingConfig",
    "ProviderBase",
    "ProviderConfig",
    "SyncConfig",
    "default_path",
    "from_dict",
    "load",
    "read_secret",
]
