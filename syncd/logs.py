"""structlog: JSON lines on stdout in production, a readable console on a TTY.

A last processor redacts secrets: any key that names credential material,
any value equal to a secret syncd has loaded (``register_secret``), and any
secret-looking field in a text (``syncd.redact.scrub_text``), so a token
can't leak through an exception message either.

Writing a line never fails the caller: a log stream that breaks (stdout a
closed pipe, a full disk) must not stop a pass or a shutdown. The lines go to
stderr from then on, or nowhere if that fails too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from syncd.redact import (
    REDACTED,
    SECRET_NAME_PARTS,
    normalize_key,
    register_secret,
    scrub_text,
)

if TYPE_CHECKING:
    from syncd.config import Config

__all__ = ["REDACTED", "LineWriter", "configure", "redact", "register_secret", "warn_config"]

#: keys that name where a secret is, not the secret (compared normalized)
_NOT_SECRET_KEYS = frozenset(normalize_key(k) for k in ("token_env", "token_file", "tracking_id"))

log = structlog.get_logger("syncd.config")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _secret_key(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _secret_key(key: Any) -> bool:
    k = normalize_key(str(key))
    if k in _NOT_SECRET_KEYS:
        return False
    return any(part in k for part in SECRET_NAME_PARTS)


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _secret_key(key):
            event[key] = REDACTED
        else:
            event[key] = _scrub(event[key])
    return event


class LineWriter:
    """structlog's logger: writes each rendered line to a stream and never
    raises into the caller. Once a write fails (``BrokenPipeError`` when the
    reader of stdout is gone, any ``OSError``, a closed file) that stream is
    given up: one line says so on ``fallback`` (stderr), which takes the
    following lines; when it fails too, lines are dropped. A daemon whose
    stdout is a broken pipe still stops on SIGTERM, finishes its passes and
    exits 0.

    One instance serves every bound logger (the factory returns it), so the
    first failure is remembered for all of them."""

    def __init__(self, stream: TextIO, fallback: TextIO | None = None) -> None:
        self._stream: TextIO | None = stream
        self._fallback = fallback if fallback is not stream else None
        # reentrant: a line logged while one is written (a finalizer) must not deadlock
        self._lock = threading.RLock()

    def msg(self, message: str) -> None:
        with self._lock:
            while self._stream is not None:
                try:
                    self._stream.write(message + "\n")
                    self._stream.flush()
                    return
                except UnicodeEncodeError as exc:
                    if message.isascii():  # not the line's fault after all
                        self._give_up(exc)
                    # the stream is fine, the line isn't (a console in an ASCII locale)
                    message = message.encode("ascii", "backslashreplace").decode("ascii")
                except Exception as exc:  # a log line must never fail its caller
                    self._give_up(exc)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def _give_up(self, exc: BaseException) -> None:
        broken, self._stream = self._stream, self._fallback
        self._fallback = None
        if isinstance(exc, OSError):
            _silence(broken)
        if self._stream is not None:
            name = getattr(broken, "name", "the log stream")
            try:
                self._stream.write(f"syncd: cannot write logs to {name} ({exc}); writing them here\n")
            except Exception as again:  # the fallback is broken too: lines are dropped
                self._give_up(again)


def _silence(stream: TextIO | None) -> None:
    """Point a stream that failed at /dev/null: Python flushes stdout and
    stderr at exit, and a flush that fails there makes the exit status 120
    (the Python docs' advice for BrokenPipeError: "Note on SIGPIPE")."""
    if stream is None:
        return
    try:
        fd = stream.fileno()
    except Exception:  # not a file (a test's StringIO): nothing flushes it at exit
        return
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def configure(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Logs go to stdout for the daemon; one-off commands pass stderr so their
    own output (tables, JSON) stays clean on stdout."""
    stream = stream or sys.stdout
    tty = _isatty(stream)
    use_json = fmt == "json" or (fmt == "auto" and not tty)
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=tty)
    )
    writer = LineWriter(stream, fallback=sys.stderr)
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
        logger_factory=lambda *_args: writer,
        cache_logger_on_first_use=False,
    )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (OSError, ValueError):  # closed, or a pipe that broke already
        return False


def warn_config(cfg: Config) -> None:
    """Log what the configuration allows but an operator should know (an
    ``http://`` base_url to a loopback host: credentials sent unencrypted).
    Called once logging is configured, at startup."""
    for provider in cfg.providers:
        for warning in provider.warnings:
            log.warning("config.warning", provider=provider.name, detail=warning)
