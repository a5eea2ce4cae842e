"""structlog: JSON lines on stdout in production, a readable console on a TTY.

A last processor redacts secrets: any key that names credential material,
and any value equal to a secret syncd has loaded (``register_secret``), so a
token can't leak through an exception message either.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from syncd.redact import SECRET_KEYS

_SECRET_VALUES: set[str] = set()
_SECRET_KEY_PARTS = (*SECRET_KEYS, "authorization", "token", "password")
REDACTED = "[redacted]"


def register_secret(value: str | None) -> None:
    """Never log this value (tokens, passwords, keys) anywhere in a message."""
    if value and len(value) >= 4:
        _SECRET_VALUES.add(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _SECRET_VALUES:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: REDACTED if _secret_key(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _secret_key(key: Any) -> bool:
    k = str(key).lower()
    if k in ("token_env", "token_file", "tracking_id"):
        return False
    return any(part in k for part in _SECRET_KEY_PARTS)


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _secret_key(key):
            event[key] = REDACTED
        else:
            event[key] = _scrub(event[key])
    return event


def configure(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Logs go to stdout for the daemon; one-off commands pass stderr so their
    own output (tables, JSON) stays clean on stdout."""
    stream = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
