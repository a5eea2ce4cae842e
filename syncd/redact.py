"""Credential material never leaves the adapter, nor an error message.

Some providers put secrets in the user document itself (Wacht:
``user_authenticator.totp_secret``, ``otp_url``, ``backup_codes``, OAuth
tokens of social connections). They are removed before the document is
hashed, stored, logged or put in an event, whatever their spelling: a key is
compared *normalized* (case-folded, without ``_``, ``-``, ``.`` or spaces),
so ``totpSecret``, ``TOTP-Secret`` and ``totp_secret`` are one key.

Error text is scrubbed too (``scrub_text``): a provider may echo the token we
sent, or the first bytes of a broken body may hold a secret field, and error
text is logged, stored in ``targets.last_error`` and ``sync_runs.error``, and
printed by ``syncd status``. The values syncd itself loaded (tokens,
passwords, keys: ``register_secret``) are replaced wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

from syncd import jsonutil

#: keys removed at any depth, whatever the provider (compared normalized)
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
REDACTED = "[redacted]"

#: what a key is compared without (``totp_secret`` = ``totp-secret`` = ``totpSecret``)
SEPARATORS = "_-. "
_SEPARATOR_BYTES = SEPARATORS.encode()
#: keys normalized so far: documents repeat the same few hundred keys, and a
#: lookup costs a fifth of normalizing again. Bounded (a hostile provider's
#: random or huge keys): once full, or for a long key, it is normalized anew.
_normalized: dict[str, str] = {}
_NORMALIZED_MAX = 1 << 16
_NORMALIZED_KEY_MAX = 128


def normalize_key(key: str) -> str:
    """A key as it is compared: separators dropped, then case-folded (not
    lower-cased: ``str.lower`` depends on context for a Greek sigma, and the
    body scan folds the whole text, not the key alone)."""
    n = _normalized.get(key)
    if n is None:
        n = _fold(key)
        if len(key) <= _NORMALIZED_KEY_MAX and len(_normalized) < _NORMALIZED_MAX:
            _normalized[key] = n
    return n


def _fold(text: str) -> str:
    # four replace() calls cost a third of one str.translate() with a table
    return text.replace("_", "").replace("-", "").replace(".", "").replace(" ", "").casefold()


_NORMALIZED_SECRET_KEYS = frozenset(normalize_key(k) for k in SECRET_KEYS)


def secret_keys(extra: Iterable[str] = ()) -> frozenset[str]:
    """The normalized keys ``strip_secrets`` removes: ours and ``extra`` (the
    provider's configured ``redact_fields``)."""
    if not extra:
        return _NORMALIZED_SECRET_KEYS
    return _NORMALIZED_SECRET_KEYS | {normalize_key(k) for k in extra}


def strip_secrets(doc: Any, extra: Iterable[str] = ()) -> Any:
    """``doc`` without any key whose normalized name is one of ``SECRET_KEYS``
    or ``extra``, at any depth. Parts with nothing to strip are shared, not
    copied (most documents carry no secret: this runs for every fetch)."""
    return _strip(doc, secret_keys(extra))


def _strip(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] | None = None
        for k, v in value.items():
            if normalize_key(k) in keys:
                if out is None:
                    out = dict(value)
                del out[k]
                continue
            new = _strip(v, keys)
            if new is not v:
                if out is None:
                    out = dict(value)
                out[k] = new
        return value if out is None else out
    if isinstance(value, list):
        items = [_strip(v, keys) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def secret_markers(extra: Iterable[str] = ()) -> re.Pattern[str]:
    """A pattern that a JSON text, with its separators dropped and case-folded
    (see ``may_hold_secrets``), matches where a key is named like a secret:
    the normalized key in quotes, then a colon."""
    keys = sorted(secret_keys(extra))
    return re.compile('"(?:' + "|".join(re.escape(k) for k in keys) + r')"\s*:')


def may_hold_secrets(body: bytes, doc: Any, markers: re.Pattern[str]) -> bool:
    """Whether ``strip_secrets`` may have anything to do with ``doc`` (parsed
    from ``body``): one C-speed scan of the text, so the document walk only runs
    for bodies that name a secret key, however spelled.

    The text is normalized as keys are: the separators ``_-. `` are dropped
    (as bytes: in UTF-8 they are never part of another character, and
    dropping them can't make a key of what is not one, since only a key is
    followed by a colon), then case-folded as ``str``; a case-sensitive scan
    of that is a third of the cost of a case-insensitive one. A key may be
    spelled with JSON escapes (``"\\u0070assword"``, or ``"\\/"`` in a
    configured key with a slash): a body with any escape is scanned as orjson
    writes the document back, which escapes nothing but quotes, backslashes
    and control characters (an escaped quote inside a value can't match
    ``"key":``)."""
    raw = body if b"\\" not in body else jsonutil.dumps(doc).encode()
    text = raw.translate(None, _SEPARATOR_BYTES).decode("utf-8", "replace").casefold()
    return markers.search(text) is not None


# -- error text ---------------------------------------------------------------------

#: values syncd loaded that must never be shown (tokens, passwords, keys),
#: longest first (one may contain another); a tuple, replaced whole, so a
#: reader in another thread never sees it change under its loop
_SECRET_VALUES: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Never show this value (a token, password or key) in a log line or an
    error message, wherever it appears."""
    global _SECRET_VALUES
    if value and len(value) >= 4 and value not in _SECRET_VALUES:
        _SECRET_VALUES = tuple(sorted({*_SECRET_VALUES, value}, key=len, reverse=True))


#: parts of a normalized key name that make its value a secret in error text
#: (wider than ``SECRET_KEYS``: text is only ever shown, so hiding a
#: ``token_type`` costs nothing)
SECRET_NAME_PARTS = (
    *sorted(_NORMALIZED_SECRET_KEYS),
    "token",
    "password",
    "passwd",
    "secret",
    "authorization",
    "apikey",
    "credential",
    "cookie",
)

# a key, then ``:`` or ``=``: quoted (JSON, a Python repr, JSON inside a JSON
# string: \"key\"), or bare (a form or query string, a header, ``key: value``)
_KEY = re.compile(
    r"""(?P<esc>\\?)(?P<q>["'])(?P<quoted>[^"'\\\r\n]{1,64}+)\\?(?P=q)\s*+[:=]\s*+"""
    r"""|(?<![\w.\-])(?P<bare>[A-Za-z_][\w.\-]{0,63}+)\s*+[:=]\s*+"""
)
# the value after a secret key, up to its end or the end of the text (a body
# cut short ends in the middle of it). A value quoted as the key was: in
# plain JSON an escaped quote is part of it, in JSON inside a JSON string
# (\"key\":\"value\") the escaped quote ends it.
_VALUE_PLAIN = {
    '"': re.compile(r'"(?:[^"\\]|\\.)*"?'),
    "'": re.compile(r"'(?:[^'\\]|\\.)*'?"),
}
_VALUE_ESCAPED = {
    '"': re.compile(r'\\"(?:(?!\\").)*(?:\\")?', re.S),
    "'": re.compile(r"\\'(?:(?!\\').)*(?:\\')?", re.S),
}
_VALUE_LIST = re.compile(r"\[[^\]]*\]?")
_VALUE_OBJECT = re.compile(r"\{[^}]*\}?")
# a bare value, after an auth scheme that is kept (``Authorization: Bearer …``)
_VALUE_BARE = re.compile(
    r"(?P<scheme>(?i:bearer|basic)\s+)?(?:" + re.escape(REDACTED) + r"|[^\s,;&\"'<>(){}\[\]]+)"
)
#: an HTTP credential: ``Bearer <token>``, ``Basic <base64>`` (RFC 9110 §11.4);
#: only a credential-looking run (8 characters or more) is hidden, so the
#: words "bearer token" survive
#: a credential looks like one: a digit or token punctuation in it, or 16+
#: letters (so "Basic authentication is disabled" stays readable)
_AUTH_SCHEME = re.compile(
    r"(?i)\b(bearer|basic)(\s+)(?=[A-Za-z]*[0-9\-._~+/=]|[A-Za-z]{16})[A-Za-z0-9\-._~+/]{8,}=*"
)
#: the userinfo of a URL (RFC 3986 §3.2.1): user:password@, or a token@
_USERINFO = re.compile(r"(?<=//)[^/\s@]+@")


def scrub_text(text: str, secrets: Collection[str] | None = None) -> str:
    """``text`` with every known secret value (``secrets``; by default the
    registered ones) replaced, and the value of every secret-looking field
    hidden: ``"totp_secret": "…"`` (a key spelled any way, quoted or not,
    even if the text ends inside its value), ``access_token=…``,
    ``Authorization: …``, ``Bearer …``, ``https://user:pass@…``.
    For text that is shown, never parsed: over-hiding is the safe mistake."""
    if not text:
        return text
    for value in _SECRET_VALUES if secrets is None else secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    if "//" in text:
        text = _USERINFO.sub(REDACTED + "@", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    return _scrub_fields(text)


def _scrub_fields(text: str) -> str:
    if not _may_name_a_secret(text):
        return text
    out: list[str] = []
    done = 0  # text[:done] is in out
    pos = 0
    while (m := _KEY.search(text, pos)) is not None:
        name = m["quoted"] if m["quoted"] is not None else m["bare"]
        hidden = _hide(text, m.end(), escaped=bool(m["esc"])) if _secret_name(name) else None
        if hidden is None:
            # not a secret (or nothing left to hide): its value is scanned
            # too, a message may hold "token=…"
            pos = m.start() + max(1, len(name))
            continue
        end, replacement = hidden
        out += (text[done : m.end()], replacement)
        done = pos = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _may_name_a_secret(text: str) -> bool:
    """A cheap test first: most text names no secret at all."""
    if ":" not in text and "=" not in text:
        return False
    folded = _fold(text)
    return any(part in folded for part in SECRET_NAME_PARTS)


def _secret_name(name: str) -> bool:
    n = _fold(name)  # not normalize_key: names in error text are not worth keeping
    return any(part in n for part in SECRET_NAME_PARTS)


def _hide(text: str, start: int, *, escaped: bool) -> tuple[int, str] | None:
    """Where the value at ``start`` ends, and what replaces it (the redaction
    in the value's own quotes, so the text still reads as it did); None when
    there is nothing to hide."""
    first = text[start : start + 1]
    if escaped and first == "\\" and text[start + 1 : start + 2] in _VALUE_ESCAPED:
        quote = text[start : start + 2]
        m = _VALUE_ESCAPED[quote[1]].match(text, start)
    elif first in _VALUE_PLAIN:
        quote = first
        m = _VALUE_PLAIN[first].match(text, start)
    elif first == "[":
        quote, m = "", _VALUE_LIST.match(text, start)
    elif first == "{":
        quote, m = "", _VALUE_OBJECT.match(text, start)
    else:
        m = _VALUE_BARE.match(text, start)
        if m is None or text.endswith(REDACTED, start, m.end()):
            return None
        return m.end(), (m["scheme"] or "") + REDACTED
    assert m is not None  # each pattern matches its own first character
    value = m.group()
    closed = quote and len(value) > len(quote) and value.endswith(quote)
    if value in (quote + REDACTED, quote + REDACTED + quote):
        return None
    return m.end(), quote + REDACTED + (quote if closed else "")
