"""Configuration: one TOML file, validated, every section key overridable by env.

Validation is pydantic's (strict about unknown keys): it already reports
every bad key with its location, which we turn into ``file: key: problem``
lines an operator can act on. Secrets are only ever *references*
(``token_env``/``token_file``); they are resolved when used, never stored.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from syncd.errors import ConfigError
from syncd.timeutil import parse_duration

DEFAULT_CONFIG = "syncd.toml"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> float:
    return parse_duration(value)


Seconds = Annotated[float, Field(ge=0)]


class _Durations(_Model):
    """Fields listed in ``_duration_fields`` accept '15m'-style strings."""

    _duration_fields: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _parse_durations(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = dict(data)
            for key in cls._duration_fields.default:  # type: ignore[attr-defined]
                if key in data and data[key] is not None:
                    try:
                        data[key] = parse_duration(data[key])
                    except (ValueError, TypeError) as exc:
                        raise ValueError(f"{key}: {exc}") from None
        return data


class DatabaseConfig(_Model):
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
            return _remember(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(f"[database] url_file {str(path)!r}: {exc.strerror}") from exc


class SyncConfig(_Durations):
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


class DaemonConfig(_Durations):
    _duration_fields = ("shutdown_grace", "poll_interval")
    listen: str = "127.0.0.1:9464"
    shutdown_grace: Seconds = 30.0
    poll_interval: Seconds = 1.0
    replica: str | None = None


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


def _path_segment(value: str) -> str:
    """An id that goes into the URL path: it is sent as one quoted segment,
    but "", "." and ".." name no resource (servers resolve dot segments)."""
    if value.strip() in ("", ".", ".."):
        raise ValueError(f"{value!r} is not an id")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("contains a control character")
    return value


class ProviderBase(_Durations):
    _duration_fields = (
        "interval",
        "connect_timeout",
        "read_timeout",
        "request_timeout",
        "retry_after_cap",
        "circuit_cooldown",
        "backoff_base",
        "backoff_cap",
    )
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    base_url: str
    token_env: str | None = None
    token_file: str | None = None
    interval: Seconds = 900.0
    concurrency: int = Field(default=8, ge=1, le=1024)
    #: client-side budget of requests per second (token bucket); None = unlimited
    max_rps: float | None = Field(default=None, gt=0)
    #: halve concurrency on 429 and recover slowly (AIMD)
    adaptive: bool = False
    connect_timeout: Seconds = 10.0
    read_timeout: Seconds = 30.0
    #: deadline of one whole request (a server trickling bytes resets read_timeout);
    #: None = max(60 s, 2 x (connect_timeout + read_timeout))
    request_timeout: Seconds | None = None
    #: a larger answer is that user's error, not read into memory
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    #: the most one user may store (its record's JSON, raw document included):
    #: a larger one is that user's error, never written
    #: (at most 80 MiB: an update's event carries it three times, and PostgreSQL
    #: stores no jsonb value over 256 MiB)
    max_document_bytes: int = Field(default=1024 * 1024, ge=1024, le=80 * 1024 * 1024)
    max_attempts: int = Field(default=5, ge=1, le=50)
    #: exponential backoff with full jitter: attempt n waits up to min(cap, base * 2**n)
    backoff_base: Seconds = 0.5
    backoff_cap: Seconds = 30.0
    retry_after_cap: Seconds = 900.0
    circuit_failures: int = Field(default=20, ge=1)
    circuit_cooldown: Seconds = 30.0
    user_ids: tuple[str, ...] = ()
    ignore_fields: tuple[str, ...] | None = None
    redact_fields: tuple[str, ...] = ()
    cron: str | None = None
    #: allow an http:// base_url although credentials go with every request
    #: (a loopback host is allowed without it, with a warning)
    allow_insecure_http: bool = False

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if "@" in parts.netloc:
            # never echo it: the error would print the password
            raise ValueError(
                "must not hold credentials (user:password@): give them by reference "
                "(token_env/token_file, or the provider's *_env/*_file keys)"
            )
        if not parts.hostname:
            raise ValueError("has no host")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _one_token_source(self) -> ProviderBase:
        _at_most_one(self, "token_env", "token_file")
        return self

    @model_validator(mode="after")
    def _no_credentials_in_clear(self) -> ProviderBase:
        """Credentials go with every request: over http:// anyone on the path
        reads them. Refused unless ``allow_insecure_http``; a loopback host
        (a local proxy, a test server) is allowed, with a warning."""
        credentials = self._credential_keys()
        if not credentials or self.allow_insecure_http:
            return self
        for key in self._url_keys():
            url = getattr(self, key)
            if _insecure(url) and not _loopback(url):
                raise ValueError(
                    f"{key}: http:// would send the credentials ({', '.join(credentials)}) "
                    "unencrypted; use https://, or set allow_insecure_http = true"
                )
        return self

    @property
    def warnings(self) -> tuple[str, ...]:
        """What this provider's settings allow but an operator should know
        (logged at startup: ``syncd.logs.warn_config``)."""
        if not self._credential_keys():
            return ()
        return tuple(
            f"{key} {getattr(self, key)} sends credentials unencrypted "
            + ("(allow_insecure_http = true)" if self.allow_insecure_http else "(allowed: a loopback host)")
            for key in self._url_keys()
            if _insecure(getattr(self, key))
        )

    def _url_keys(self) -> tuple[str, ...]:
        """The keys holding a URL credentials are sent to (a provider type's
        own ``token_url``, if it has one, besides ``base_url``)."""
        return tuple(k for k in ("base_url", "token_url") if getattr(self, k, None))

    def _credential_keys(self) -> list[str]:
        """The keys that name a credential (``token_env``, ``password_file``, …) and are set."""
        return [k for k in type(self).model_fields if k.endswith(("_env", "_file")) and getattr(self, k)]


class ZitadelConfig(ProviderBase):
    type: Literal["zitadel"]
    client_id: str | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    #: sent as ``x-zitadel-orgid``
    org_id: str | None = None
    scope: str = "openid urn:zitadel:iam:org:project:id:zitadel:aud"

    @model_validator(mode="after")
    def _auth(self) -> ZitadelConfig:
        _at_most_one(self, "client_secret_env", "client_secret_file")
        has_cc = self.client_id is not None
        if has_cc and not (self.client_secret_env or self.client_secret_file):
            raise ValueError("client_id needs client_secret_env or client_secret_file")
        if not has_cc and not (self.token_env or self.token_file):
            raise ValueError("set token_env/token_file, or client_id with client_secret_env/_file")
        return self


class WachtConfig(ProviderBase):
    type: Literal["wacht"]
    connection_id: Annotated[str, AfterValidator(_path_segment)]

    @model_validator(mode="after")
    def _auth(self) -> WachtConfig:
        _need_token(self)
        return self


class FortanixConfig(ProviderBase):
    type: Literal["fortanix"]
    api_key_env: str | None = None
    api_key_file: str | None = None
    email: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    account_id: str | None = None
    with_groups: Literal["all", "explicit_only", "none"] = "all"

    @model_validator(mode="after")
    def _auth(self) -> FortanixConfig:
        _at_most_one(self, "api_key_env", "api_key_file")
        _at_most_one(self, "password_env", "password_file")
        has_key = bool(self.api_key_env or self.api_key_file)
        has_user = self.email is not None
        if has_key == has_user:
            raise ValueError("set either api_key_env/api_key_file, or email with password_env/_file")
        if has_user and not (self.password_env or self.password_file):
            raise ValueError("email needs password_env or password_file")
        if has_user and not self.account_id:
            raise ValueError("a user session (email) needs account_id")
        return self


class WebexConfig(ProviderBase):
    type: Literal["webex"]
    org_id: Annotated[str, AfterValidator(_path_segment)]
    client_id: str | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    refresh_token_env: str | None = None
    refresh_token_file: str | None = None

    @model_validator(mode="after")
    def _auth(self) -> WebexConfig:
        _at_most_one(self, "client_secret_env", "client_secret_file")
        _at_most_one(self, "refresh_token_env", "refresh_token_file")
        if self.client_id is not None:
            if not (self.client_secret_env or self.client_secret_file):
                raise ValueError("client_id needs client_secret_env or client_secret_file")
            if not (self.refresh_token_env or self.refresh_token_file):
                raise ValueError("client_id needs refresh_token_env or refresh_token_file")
        else:
            _need_token(self)
        return self


class ScimConfig(ProviderBase):
    type: Literal["scim"]

    @model_validator(mode="after")
    def _auth(self) -> ScimConfig:
        _need_token(self)
        return self


def _insecure(url: str) -> bool:
    return url.lower().startswith("http://")


def _loopback(url: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: the traffic never leaves the machine."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _at_most_one(model: BaseModel, a: str, b: str) -> None:
    if getattr(model, a) and getattr(model, b):
        raise ValueError(f"set {a} or {b}, not both")


def _need_token(model: ProviderBase) -> None:
    if not (model.token_env or model.token_file):
        raise ValueError("set token_env or token_file")


ProviderConfig = Annotated[
    ZitadelConfig | WachtConfig | FortanixConfig | WebexConfig | ScimConfig,
    Field(discriminator="type"),
]
PROVIDER_TYPES = ("zitadel", "wacht", "fortanix", "webex", "scim")


class Config(_Model):
    database: DatabaseConfig = DatabaseConfig()
    sync: SyncConfig = SyncConfig()
    daemon: DaemonConfig = DaemonConfig()
    logging: LoggingConfig = LoggingConfig()
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


def read_secret(provider: ProviderBase, env_key: str, file_key: str) -> str | None:
    """Resolve a secret reference. ``*_file`` paths may use
    ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``)."""
    env_name = getattr(provider, env_key, None)
    file_name = getattr(provider, file_key, None)
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"provider {provider.name!r}: {env_key} names ${env_name}, which is not set")
        return _remember(value.strip())
    if file_name:
        path = Path(os.path.expandvars(os.path.expanduser(file_name)))
        try:
            return _remember(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(
                f"provider {provider.name!r}: {file_key} {str(path)!r}: {exc.strerror}"
            ) from exc
    return None


def _remember(secret: str) -> str:
    from syncd.logs import register_secret

    register_secret(secret)
    return secret
