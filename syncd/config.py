"""Configuration: one TOML file, validated, every section key overridable by env.

Validation is pydantic's (strict about unknown keys): it already reports
every bad key with its location, which we turn into ``file: key: problem``
lines an operator can act on. Secrets are only ever *references*
(``token_env``/``token_file``); they are resolved when used, never stored.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from syncd.configbase import (
    ANY,
    CADENCE,
    POLL,
    Durations,
    Model,
    ProviderBase,
    Seconds,
    durations,
    listen_address,
    read_secret,
    remember,
)
from syncd.errors import ConfigError, ConfigNotFound, UnknownProvider
from syncd.providers.registry import PROVIDER_TYPES, REGISTRY

DEFAULT_CONFIG = "syncd.toml"


class DatabaseConfig(Model):
    url: str | None = None
    #: a file holding the URL (systemd LoadCredential=, a mounted Secret)
    url_file: str | None = None
    #: the embedded PostgreSQL under ``state_dir``: true asks for it, false
    #: refuses it; unset, it is used when the config file names no URL
    embedded: bool | None = None
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _one_database(self) -> DatabaseConfig:
        if self.embedded and (self.url or self.url_file):
            given = "url" if self.url else "url_file"
            raise ValueError(f"set {given} or embedded = true, not both")
        if self.embedded is False and not (self.url or self.url_file):
            raise ValueError("embedded = false needs a url (or url_file, or $SYNCD_DATABASE_URL)")
        return self

    @property
    def uses_embedded(self) -> bool:
        return not (self.url or self.url_file)

    def embedded_reason(self, source: str) -> str:
        """Why the embedded PostgreSQL is used, for ``embedded.announce``."""
        if self.embedded:
            return f"[database] embedded = true in {source}"
        return f"{source} names no [database] url, nor $SYNCD_DATABASE_URL"

    def resolved_url(self) -> str | None:
        """The URL, reading ``url_file`` if that is how it was given; None
        for the embedded PostgreSQL."""
        if self.url or not self.url_file:
            return self.url
        path = Path(os.path.expandvars(os.path.expanduser(self.url_file)))
        try:
            return remember(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(f"[database] url_file {str(path)!r}: {exc.strerror}") from exc


class SyncConfig(Durations):
    _duration_fields: ClassVar[Mapping[str, float]] = {
        # renewed every third of itself while a pass runs
        "lease": CADENCE,
        "delete_confirm_after": CADENCE,
        # doubles on every failure: zero would stay zero
        "error_retry": POLL / 10,
    }
    _durations = durations(*_duration_fields)
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
    _duration_fields: ClassVar[Mapping[str, float]] = {"shutdown_grace": ANY, "poll_interval": POLL}
    _durations = durations(*_duration_fields)
    #: HOST:PORT; a port alone is 127.0.0.1:PORT (see ``listen_address``)
    listen: str = "127.0.0.1:9464"
    shutdown_grace: Seconds = 30.0
    poll_interval: Seconds = 1.0
    replica: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return listen_address(v)


class LoggingConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class OutboxConfig(Durations):
    """Retention the daemon applies itself (no cron job needed)."""

    _duration_fields: ClassVar[Mapping[str, float]] = {"retention": CADENCE}
    _durations = durations(*_duration_fields)
    #: delete events older than this (and finished sync runs); None: keep all
    retention: float | None = None
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
    #: what the operator should know about how it was loaded (an unknown
    #: ``SYNCD_*`` variable), one line each
    notes: tuple[str, ...] = Field(default=(), exclude=True)

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
        raise UnknownProvider(f"no provider named {name!r} in {self.source} (known: {known})")


_SECTIONS: dict[str, type[BaseModel]] = {
    "database": DatabaseConfig,
    "sync": SyncConfig,
    "daemon": DaemonConfig,
    "logging": LoggingConfig,
    "outbox": OutboxConfig,
}
#: short aliases operators expect
_ENV_ALIASES = {
    "SYNCD_LISTEN": ("daemon", "listen"),
    "SYNCD_REPLICA": ("daemon", "replica"),
    "SYNCD_LOG_LEVEL": ("logging", "level"),
    "SYNCD_LOG_FORMAT": ("logging", "format"),
}
#: read elsewhere, not a config key
_ENV_OTHER = ("SYNCD_CONFIG", "SYNCD_STATE_DIR")
#: the test suite's own (``SYNCD_TEST_DATABASE_URL``, tokens of the fakes)
_ENV_IGNORED_PREFIXES = ("SYNCD_TEST_",)


def env_variables() -> dict[str, tuple[str, str]]:
    """Every ``SYNCD_*`` variable that sets a config key: name → (section, key)."""
    out = {
        f"SYNCD_{section.upper()}_{key.upper()}": (section, key)
        for section, model in _SECTIONS.items()
        for key in model.model_fields
    }
    out.update(_ENV_ALIASES)
    return out


def _env_overrides(
    data: dict[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """``SYNCD_<SECTION>_<KEY>`` overrides ``[section] key`` (systemd and
    Kubernetes set environment, not flags). Also returns which variable set
    which key, so an error names the variable, not the file."""
    origin: dict[tuple[str, ...], str] = {}
    for env, (section, key) in env_variables().items():
        if env in environ:
            data.setdefault(section, {})[key] = environ[env]
            origin[(section, key)] = env
    if "SYNCD_STATE_DIR" in environ:
        data["state_dir"] = environ["SYNCD_STATE_DIR"]
        origin[("state_dir",)] = "SYNCD_STATE_DIR"
    return data, origin


def unknown_env(environ: Mapping[str, str], referenced: set[str]) -> list[str]:
    """A line for each ``SYNCD_*`` variable syncd does not read (a typo makes
    an override silently do nothing); names a config references (``token_env
    = "SYNCD_CORP_TOKEN"``) are known."""
    known = [*env_variables(), *_ENV_OTHER]
    lines = []
    for name in sorted(environ):
        if (
            not name.startswith("SYNCD_")
            or name in known
            or name in referenced
            or name.startswith(_ENV_IGNORED_PREFIXES)
        ):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        lines.append(
            f"unknown environment variable {name}, ignored ({hint}known: {', '.join(sorted(known))})"
        )
    return lines


def default_path(environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """The config path to use, and whether the operator named it explicitly."""
    environ = os.environ if environ is None else environ
    if environ.get("SYNCD_CONFIG"):
        return environ["SYNCD_CONFIG"], True
    return DEFAULT_CONFIG, False


def load(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate a config file.

    The file is ``path`` (``--config``), else ``$SYNCD_CONFIG``, else
    ``./syncd.toml``; none there is an error naming where it looked (without
    one, syncd used to start an embedded PostgreSQL in whatever directory it
    ran in), unless ``$SYNCD_DATABASE_URL`` names the database (the
    environment is then the whole config). A file that names no database URL
    gets the embedded PostgreSQL.
    """
    environ = os.environ if environ is None else environ
    if path is not None:
        p, how = Path(path), "--config"
    elif environ.get("SYNCD_CONFIG"):
        p, how = Path(environ["SYNCD_CONFIG"]), "$SYNCD_CONFIG"
    else:
        p, how = Path(DEFAULT_CONFIG), ""
    if not p.is_file() and not how and environ.get("SYNCD_DATABASE_URL"):
        # no file anywhere, but a database named in the environment (a
        # Kubernetes Job's `syncd migrate`): the defaults, overridden from it
        data, origin = _env_overrides({}, environ)
        return from_dict(data, source="<environment>", origin=origin)
    if not p.is_file():
        raise ConfigNotFound(_not_found(p, how))
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    data, origin = _env_overrides(data, environ)
    cfg = from_dict(data, source=str(p), origin=origin)
    referenced = {
        str(getattr(pc, key))
        for pc in cfg.providers
        for key in type(pc).model_fields
        if key.endswith("_env") and getattr(pc, key)
    }
    notes = unknown_env(environ, referenced)
    return cfg.model_copy(update={"notes": tuple(notes)}) if notes else cfg


def _not_found(p: Path, how: str) -> str:
    state = "a directory" if p.is_dir() else "not found"
    if how:
        return f"config file not found: {p} ({how}: {state})"
    return (
        f"no config file: looked at --config (not given), $SYNCD_CONFIG (not set), ./{p} ({state}).\n"
        "Write one (README.md, section Configuration; one without a [database] url uses an embedded "
        "PostgreSQL under state_dir) or name it with --config PATH. `syncd demo` needs none."
    )


def from_dict(
    data: Mapping[str, Any], source: str = "<dict>", origin: Mapping[tuple[str, ...], str] | None = None
) -> Config:
    """Validate a config; ``origin`` maps keys set by the environment to their variable."""
    try:
        return Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data, source, origin or {})) from None


def _describe(
    exc: ValidationError, data: Mapping[str, Any], source: str, origin: Mapping[tuple[str, ...], str]
) -> str:
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
        path = tuple(str(part) for part in loc)
        env = origin.get(path[:2]) or origin.get(path[:1])
        if env:
            lines.append(f"${env}: {msg} (environment variable, overrides {key} in {source})")
        else:
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
    "env_variables",
    "from_dict",
    "load",
    "read_secret",
]
