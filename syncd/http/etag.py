"""Entity tags (RFC 9110 §8.8.3) a provider gives on a by-id read: which ones
syncd may keep and send back in ``If-None-Match`` (§13.1.2).

An ETag is the server's opaque word, sent back verbatim (a weak ``W/"…"``
too: §13.1.2 compares weakly, so a weak tag is fit for a conditional GET).
What it must not be is a way in: a value with a CR or LF would split the
header we send it back in, and a huge one is stored for every user. So it
is kept only when it is short and of visible US-ASCII characters; quotes
are not insisted on (servers that send a bare token mean it just the same).
"""

from __future__ import annotations

#: the longest ETag kept; real ones are a hash or a version (under 100 characters)
MAX_ETAG = 256


def etag_problem(value: str) -> str | None:
    """Why ``value`` is not an ETag syncd keeps and sends back; None when it is."""
    if not value:
        return "empty"
    if len(value) > MAX_ETAG:
        return f"longer than {MAX_ETAG} characters"
    # VCHAR only (RFC 5234 B.1: %x21-7E): no control character, no CR/LF, no
    # space, nothing outside ASCII (aiohttp would encode it, the server may not)
    if any(not 0x21 <= ord(c) <= 0x7E for c in value):
        return "contains a character that is not visible US-ASCII (a control character, space or non-ASCII)"
    return None


def usable_etag(value: str | None) -> str | None:
    """``value`` if it is an ETag syncd keeps and sends back, else None."""
    return value if value is not None and etag_problem(value) is None else None
