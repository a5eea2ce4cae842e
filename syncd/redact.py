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


def secret_markers(extra: Iterable[str] = ()) -> re.Pattern[bytes]:
    """A pattern a JSON body must match for ``strip_secrets`` to have anything
    to do: a key (any case) named like a secret, then a colon."""
    keys = sorted(SECRET_KEYS | {k.lower() for k in extra})
    alternatives = b"|".join(re.escape(k.encode()) for k in keys)
    return re.compile(rb'"(?:' + alternatives + rb')"\s*:', re.IGNORECASE)


def may_hold_secrets(body: bytes, markers: re.Pattern[bytes]) -> bool:
    """One C-speed scan of the raw body, so the document walk only runs for
    bodies that name a secret key (an escaped quote inside a string value
    can't match ``"key":``)."""
    return markers.search(body) is not None
