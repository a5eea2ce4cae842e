"""Credential material never leaves the adapter.

Some providers put secrets in the user document itself (Wacht:
``user_authenticator.totp_secret``, ``otp_url``, ``backup_codes``, OAuth
tokens of social connections). They are removed before the document is
hashed, stored, logged or put in an event.
"""

from __future__ import annotations

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
    """A copy of ``doc`` without any key named in ``SECRET_KEYS`` or ``extra``
    (case-insensitive), at any depth."""
    keys = SECRET_KEYS | {k.lower() for k in extra}
    return _strip(doc, keys)


def _strip(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v, keys) for k, v in value.items() if k.lower() not in keys}
    if isinstance(value, list):
        return [_strip(v, keys) for v in value]
    return value
