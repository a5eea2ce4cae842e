"""Credential material never leaves the adapter.

Some providers put secrets in the user document itself (Wacht:
``user_authenticator.totp_secret``, ``otp_url``, ``backup_codes``, OAuth
tokens of social connections). They are removed before the document is
hashed, stored, logged or put in an event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from syncd import jsonutil

#: keys removed at any depth, whatever the provider
SECRET_KEYS = frozenset(
    {
        "totp_secret",
        "otp_url",
        "backup_codes",
        "access_token",
        "refresh_token",
        "id_token",
        "password",
        "secret",
        "client_secret",
        "api_key",
        "private_key",
    }
)


def strip_secrets(doc: Any, extra: Iterable[str] = ()) -> Any:
    """``doc`` without any key named in ``SECRET_KEYS`` or ``extra``
    (case-insensitive), at any depth. Parts with nothing to strip are shared,
    not copied (most documents carry no secret: this runs for every fetch)."""
    keys = SECRET_KEYS | {k.lower() for k in extra} if extra else SECRET_KEYS
    return _strip(doc, keys)


def _strip(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] | None = None
        for k, v in value.items():
            if k.lower() in keys:
                if out is None:
                    out = {k2: v2 for k2, v2 in value.items()}
                del out[k]
                continue
            new = _strip(v, keys)
            if new is not v:
                if out is None:
                    out = {k2: v2 for k2, v2 in value.items()}
                out[k] = new
        return value if out is None else out
    if isinstance(value, list):
        items = [_strip(v, keys) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def secret_markers(extra: Iterable[str] = ()) -> re.Pattern[str]:
    """A pattern that a JSON text, lower-cased, matches where a key is named
    like a secret: the key in quotes, then a colon."""
    keys = sorted(SECRET_KEYS | {k.lower() for k in extra})
    return re.compile('"(?:' + "|".join(re.escape(k) for k in keys) + r')"\s*:')


def may_hold_secrets(body: bytes, doc: Any, markers: re.Pattern[str]) -> bool:
    """Whether ``strip_secrets`` may have anything to do with ``doc`` (parsed
    from ``body``): one C-speed scan of the text, so the document walk only runs
    for bodies that name a secret key. The text is lower-cased as ``str``, as
    ``strip_secrets`` compares keys, and a case-sensitive scan of it is a third
    of the cost of a case-insensitive one. A key may be spelled with JSON
    escapes (``"\\u0070assword"``, or ``"\\/"`` in a configured key with a
    slash): a body with any escape is scanned as orjson
    writes the document back, which escapes nothing but quotes, backslashes and
    control characters (an escaped quote inside a value can't match ``"key":``)."""
    text = body.decode("utf-8", "replace") if b"\\" not in body else jsonutil.dumps(doc)
    return markers.search(text.lower()) is not None
