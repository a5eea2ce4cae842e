"""How the fake providers page their list endpoints, with the quirks real
servers have shown: a silent cap on the page size, paging ignored (page 1
again and again, echoing the requested start or not), a user counted in the
total but never listed, pages that shift under the listing. Each dialect
maps its own parameters (SCIM startIndex/count, ZITADEL offset/limit,
Fortanix keyset start/limit) onto ``page``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ListingQuirks:
    #: the most one page holds, whatever was asked (many servers cap silently)
    cap: int = 100
    #: page sizes above this are refused with 400 (ZITADEL: 1000); None = capped silently
    max_count: int | None = None
    #: every page is the first one (the server ignores the paging parameter)
    ignore_paging: bool = False
    #: with ``ignore_paging``: echo the requested startIndex anyway (sneakier)
    echo_requested: bool = False
    #: counted in the total, never listed (a short listing)
    hidden: set[str] = field(default_factory=set)
    #: every page after the first starts this many users early (a user inserted
    #: before the cursor mid-listing: the last ids of a page are listed again)
    shift: int = 0
    #: the server ignores ``filter`` and lists everyone (200, unfiltered), and
    #: its ServiceProviderConfig says filter.supported = false
    filter_ignored: bool = False
    #: the server ignores ``filter`` (ZITADEL: ``queries``) and lists everyone,
    #: while its ServiceProviderConfig still says filter.supported = true
    filter_ignored_silently: bool = False
    #: the server answers every filtered request with no users (200)
    filter_answers_none: bool = False
    #: the maxResults its ServiceProviderConfig announces, when not ``cap``
    #: (a server whose pages are capped lower than it says)
    announced_max: int | None = None
    #: list requests answered so far
    calls: int = 0


def page(ids: list[str], start: int, count: int, quirks: ListingQuirks) -> list[str]:
    """The ids of the page of ``count`` from the 0-based ``start``."""
    quirks.calls += 1
    count = max(0, min(count, quirks.cap))
    if quirks.ignore_paging:
        start = 0
    elif start and quirks.shift:
        start = max(0, start - quirks.shift)
    return [uid for uid in ids[start : start + count] if uid not in quirks.hidden]


_EQ = re.compile(r'^\s*([A-Za-z.$:\[\]]+)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)


def scim_filter(expression: str) -> list[tuple[str, str]] | None:
    """``attr eq "value" [or attr eq "value" …]`` as (attribute, value) pairs;
    None for anything else (the fake supports no more of RFC 7644 §3.4.2.2)."""
    terms = []
    for part in re.split(r"\s+or\s+", expression, flags=re.IGNORECASE):
        m = _EQ.match(part)
        if not m:
            return None
        terms.append((m.group(1).lower(), m.group(2).replace('\\"', '"')))
    return terms


def scim_matches(doc: dict[str, Any], terms: Iterable[tuple[str, str]]) -> bool:
    for attribute, value in terms:
        if attribute == "emails.value":
            # SCIM's emails, or Wacht's own body (user_email_addresses)
            emails = [e.get("value") for e in doc.get("emails") or []]
            emails += [e.get("email") for e in doc.get("user_email_addresses") or []]
            if any(str(e or "").lower() == value.lower() for e in emails):
                return True
        elif attribute == "username":
            if str(doc.get("userName", doc.get("username", ""))).lower() == value.lower():
                return True
        elif str(doc.get(_SCIM_ATTRIBUTES.get(attribute, attribute), "")) == value:
            return True
    return False


_SCIM_ATTRIBUTES = {"id": "id", "externalid": "externalId", "displayname": "displayName"}
