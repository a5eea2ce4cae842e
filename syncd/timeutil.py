"""Timestamp parsing for the formats providers use."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

_FRACTION = re.compile(r"\.(\d+)")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
#: a Retry-After beyond a year is read as a year: longer than any cap the caller
#: applies, and ``timedelta``/``datetime`` overflow on delays like 99999999999999
MAX_RETRY_AFTER = 366 * 86400


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_rfc3339(value: str | None) -> datetime | None:
    """RFC 3339, including ZITADEL's nanosecond fractions (Python keeps micros)."""
    if not value:
        return None
    try:  # Python 3.11 reads "Z" and drops digits past microseconds itself
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return _parse_rfc3339_slow(value)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_rfc3339_slow(value: str) -> datetime | None:
    """What ``fromisoformat`` refuses: spaces around it, a lower-case "z"."""
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value.strip(), count=1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_compact(value: str | None) -> datetime | None:
    """Fortanix DSM's compact UTC form, ``20170509T070912Z``."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return parse_rfc3339(value)


def parse_retry_after(value: str | None, now: datetime | None = None) -> datetime | None:
    """RFC 9110 §10.2.3: ``Retry-After`` is delay-seconds or an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    now = now or utcnow()
    if value.isascii() and value.isdigit():  # str.isdigit() also accepts "²", which int() refuses
        return now + timedelta(seconds=min(int(value), MAX_RETRY_AFTER))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when, now)


def parse_duration(value: str | float) -> float:
    """``"15m"``, ``"30s"``, ``"2h"``, ``"1d"``, ``"250ms"`` or plain seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '15m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a duration (use e.g. '30s', '15m', '2h', '7d')")
    return float(m.group(1)) * _UNITS[m.group(2)]
