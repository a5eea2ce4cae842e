"""What every config model shares: the strict base model, durations, and
``ProviderBase`` (the keys every provider type has), and secret references.

Provider types add their own keys in their module under ``syncd/providers/``;
``syncd.config`` assembles them (through ``syncd.providers.REGISTRY``) into the
``[[providers]]`` union. Defaults of the HTTP layer come from
``syncd.http.defaults``, which the classes read too.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from syncd.errors import ConfigError
from syncd.http import defaults
from syncd.timeutil import parse_duration

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class Model(BaseModel):
    """Strict about keys; a value for a ``Literal`` field (``level``, ``format``,
    ``refresh``) is read in any case: ``SYNCD_LOGGING_LEVEL=DEBUG`` is ``debug``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _any_case_words(cls, data: Any) -> Any:
        words = _literal_fields(cls)
        if isinstance(data, Mapping) and any(isinstance(data.get(k), str) for k in words):
            data = {k: v.strip().lower() if k in words and isinstance(v, str) else v for k, v in data.items()}
        return data


@cache
def _literal_fields(cls: type[BaseModel]) -> frozenset[str]:
    """The fields of ``cls`` whose values are a fixed set of lower-case words."""
    return frozenset(
        name
        for name, field in cls.model_fields.items()
        if get_origin(field.annotation) is Literal
        and all(isinstance(a, str) and a == a.lower() for a in get_args(field.annotation))
    )


Seconds = Annotated[float, Field(ge=0)]

#: floors of durations (seconds). A cadence (how often syncd asks a provider,
#: or the database, for something) is at least a second: "0s" is a storm of
#: requests. Polling loops that tests and the demo run fast, at least 100 ms.
#: Timeouts, backoffs and caps only need to be more than nothing (0 means
#: "none" or "at once" to the code using them); a millisecond is the floor.
CADENCE = 1.0
POLL = 0.1
POSITIVE = 0.001
ANY = 0.0


class Durations(Model):
    """Fields named in ``_duration_fields`` (with their floor, in seconds)
    take '15m'-style strings; a subclass checks them with
    ``_durations = durations(*_duration_fields)``. A unit is required:
    ``interval = 15`` could mean seconds or minutes, so it is an error that
    shows what to write."""

    _duration_fields: ClassVar[Mapping[str, float]] = {}


def durations(*fields: str) -> Any:
    """The validator of a ``Durations`` class's duration fields (one per
    field, so an error names its key, and the environment variable that set it)."""

    def parse(cls: type[Durations], v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return v
        return config_duration(v, cls._duration_fields[info.field_name or ""])

    return field_validator(*fields, mode="before")(parse)


def config_duration(value: Any, floor: float) -> float:
    """A duration from the config: a string with a unit, at least ``floor``."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError('expected a duration with a unit, like "30s" or "15m"')
    text = str(value).strip()
    if isinstance(value, int | float) or _BARE_NUMBER.match(text):
        raise ValueError(f'a duration needs a unit: write "{text}s" (or "{text}m", "{text}h")')
    seconds = parse_duration(text)
    if seconds < floor:
        raise ValueError(f"must be at least {format_seconds(floor)} (got {text!r})")
    return seconds


_BARE_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def format_seconds(seconds: float) -> str:
    """A floor as an operator writes it: "1s", "100ms"."""
    if seconds >= 1 and seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds * 1000:g}ms"


def listen_address(value: str) -> str:
    """``host:port`` to serve on, checked and normalized. A port alone
    (``9464``, ``:9464``) is ``127.0.0.1:9464``: the health and metrics
    endpoints are not for everyone unless asked (``0.0.0.0:9464``,
    ``[::]:9464``). IPv6 hosts go in brackets."""
    text = value.strip()
    usage = 'must be HOST:PORT, e.g. "127.0.0.1:9464" (a port alone listens on 127.0.0.1)'
    if text.removeprefix(":").isdigit():
        host, port = "127.0.0.1", text.removeprefix(":")
    elif text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"{text!r} {usage}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
        host = f"[{host}]"
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{text!r} {usage}")
        if ":" in host:
            raise ValueError(f"{text!r}: an IPv6 address goes in brackets, e.g. [::1]:9464")
        if not _HOSTNAME.match(host):
            raise ValueError(f"{text!r}: {host!r} is not a host name or address")
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return f"{host}:{int(port)}"


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def path_segment_id(value: str) -> str:
    """An id that goes into the URL path: it is sent as one quoted segment,
    but "", "." and ".." name no resource (servers resolve dot segments)."""
    if value.strip() in ("", ".", ".."):
        raise ValueError(f"{value!r} is not an id")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("contains a control character")
    return value


class ProviderBase(Durations):
    _duration_fields: ClassVar[Mapping[str, float]] = {
        "interval": CADENCE,
        "deleted_recheck": CADENCE,
        "forget_deleted_after": CADENCE,
        "discover": CADENCE,
        # one request per walk, like a poll
        "feed_interval": POLL,
        # Retry-After has a resolution of a second: a smaller cap ignores it
        "retry_after_cap": CADENCE,
        "connect_timeout": POSITIVE,
        "read_timeout": POSITIVE,
        "request_timeout": POSITIVE,
        "circuit_cooldown": POSITIVE,
        "backoff_base": POSITIVE,
        "backoff_cap": POSITIVE,
        "feed_overlap": ANY,
    }
    _durations = durations(*_duration_fields)
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    base_url: str
    token_env: str | None = None
    token_file: str | None = None
    interval: Seconds = 900.0
    #: how often a deleted user is asked for again (it may come back)
    deleted_recheck: Annotated[float, Field(gt=0)] = 86400.0
    #: a user deleted this long ago stops being a target (None: never)
    forget_deleted_after: Annotated[float, Field(gt=0)] | None = 30 * 86400.0
    concurrency: int = Field(default=defaults.CONCURRENCY, ge=1, le=1024)
    #: client-side budget of requests per second (token bucket); None = unlimited
    max_rps: float | None = Field(default=defaults.MAX_RPS, gt=0)
    #: halve concurrency on 429 and recover slowly (AIMD)
    adaptive: bool = defaults.ADAPTIVE
    connect_timeout: Seconds = defaults.CONNECT_TIMEOUT
    read_timeout: Seconds = defaults.READ_TIMEOUT
    #: deadline of one whole request (a server trickling bytes resets read_timeout);
    #: None = max(60 s, 2 x (connect_timeout + read_timeout))
    request_timeout: Seconds | None = None
    #: a larger answer is that user's error, not read into memory
    max_body_bytes: int = Field(default=defaults.MAX_BODY, ge=1024)
    #: the most one user may store (its record's JSON, raw document included):
    #: a larger one is that user's error, never written
    #: (at most 80 MiB: an update's event carries it three times, and PostgreSQL
    #: stores no jsonb value over 256 MiB)
    max_document_bytes: int = Field(default=1024 * 1024, ge=1024, le=80 * 1024 * 1024)
    max_attempts: int = Field(default=defaults.MAX_ATTEMPTS, ge=1, le=50)
    #: exponential backoff with full jitter: attempt n waits up to min(cap, base * 2**n)
    backoff_base: Seconds = defaults.BACKOFF_BASE
    backoff_cap: Seconds = defaults.BACKOFF_CAP
    retry_after_cap: Seconds = defaults.RETRY_AFTER_CAP
    circuit_failures: int = Field(default=defaults.CIRCUIT_FAILURES, ge=1)
    circuit_cooldown: Seconds = defaults.CIRCUIT_COOLDOWN
    user_ids: tuple[str, ...] = ()
    ignore_fields: tuple[str, ...] | None = None
    #: emit user.updated when only representation fields changed (SCIM
    #: meta.location, meta.lastModified, meta.version; ZITADEL details.sequence,
    #: details.changeDate): off, such a change rewrites the mirror row quietly
    representation_events: bool = False
    redact_fields: tuple[str, ...] = ()
    cron: str | None = None
    #: how users are read: "batch" (many by id per request, where the API
    #: allows), "by_id" (one request each), "auto" (batch where possible),
    #: "feed" (auto, and the provider's change feed makes changed users due)
    refresh: Literal["auto", "by_id", "batch", "feed"] = "auto"
    #: with refresh = "feed": seconds between walks of the change feed
    feed_interval: Annotated[float, Field(gt=0)] = 60.0
    #: each walk asks for changes since the last one's newest, less this: a
    #: change stamped before one already seen but committed after (or a page
    #: walk it raced) is still caught
    feed_overlap: Seconds = 120.0
    #: does this type's API have a change feed (its module says)
    has_feed: ClassVar[bool] = False
    #: ids per batch read (ZITADEL: at most 1000; SCIM: at most the server's
    #: filter.maxResults, and 100, as the ids go in the URL)
    batch_size_read: int = Field(default=100, ge=2, le=1000)
    #: list every user this often and enrol the new ones (None: explicit targets only)
    discover: Annotated[float, Field(gt=0)] | None = None
    #: discovery's scope; its type is the provider type's (a SCIM filter string,
    #: ZITADEL query objects, a Fortanix group): each provider module declares it
    discover_filter: Any = None
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
    def _refresh_modes_built(self) -> ProviderBase:
        if self.refresh == "feed" and not self.has_feed:
            raise ValueError(
                f'refresh: "feed" needs a change feed, and the {getattr(self, "type", "?")} API has none'
                ' (feeds: scim, webex); use "auto", "batch" or "by_id"'
            )
        return self

    @model_validator(mode="after")
    def _one_token_source(self) -> ProviderBase:
        at_most_one(self, "token_env", "token_file")
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


def at_most_one(model: BaseModel, a: str, b: str) -> None:
    if getattr(model, a) and getattr(model, b):
        raise ValueError(f"set {a} or {b}, not both")


def need_token(model: ProviderBase) -> None:
    if not (model.token_env or model.token_file):
        raise ValueError("set token_env or token_file")


def read_secret(provider: ProviderBase, env_key: str, file_key: str) -> str | None:
    """Resolve a secret reference. ``*_file`` paths may use
    ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``)."""
    env_name = getattr(provider, env_key, None)
    file_name = getattr(provider, file_key, None)
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"provider {provider.name!r}: {env_key} names ${env_name}, which is not set")
        return remember(value.strip())
    if file_name:
        path = Path(os.path.expandvars(os.path.expanduser(file_name)))
        try:
            return remember(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(
                f"provider {provider.name!r}: {file_key} {str(path)!r}: {exc.strerror}"
            ) from exc
    return None


def remember(secret: str) -> str:
    """A secret read from the config's references: never logged from now on."""
    from syncd.logs import register_secret

    register_secret(secret)
    return secret
