"""One page of a provider's user listing, as its adapter read it: the
shape the providers produce and discovery checks (``syncd.discovery.listing``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.errors import SyncdError

#: a cursor: a SCIM startIndex or a ZITADEL offset (int), a Fortanix keyset
#: position (the last id listed; None for the first page)
Cursor = int | str | None


class ListingIncomplete(SyncdError):
    """The listing cannot be trusted as the whole directory; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True, slots=True)
class Page:
    """One page of a listing, as a provider's adapter read it."""

    #: the cursor this page was asked for
    cursor: Cursor
    ids: tuple[str, ...]
    #: the cursor the server says it answered (SCIM's startIndex), when it says one
    echoed: Cursor = None
    #: the total the server announced (SCIM totalResults, ZITADEL totalResult)
    total: int | None = None
    #: the cursor of the next page; None when this is the last page
    next: Cursor = None
    #: each listed user's document, in the order of ``ids``, as the by-id read
    #: gives it (ZITADEL v2, SCIM): the page refreshes them too
    #: (``syncd.sync.page_refresh``); empty where the listing's shape is not
    #: the by-id read's (Fortanix, Wacht)
    documents: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class PageRefreshed:
    """What refreshing the listed targets of one page did."""

    #: targets whose mirror the page's documents brought up to date
    refreshed: int = 0
    #: of them, changed (an event each)
    changed: int = 0


@dataclass(frozen=True, slots=True)
class ListSettings:
    """How to page one provider's listing, once its server said what it
    supports (SCIM ``ServiceProviderConfig``) or its reference did."""

    page_size: int


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedPage:
    """One page of a provider's change feed: each user listed with the
    change time the provider gave it (None: it gave none)."""

    changes: tuple[tuple[str, datetime | None], ...]
    #: the cursor of the next page; None when this is the last page
    next: Cursor = None
