"""Whether a paged listing is complete, decided page by page with no I/O.

A listing counts only when every page answered and parsed, paging advanced
as asked, no page repeats an earlier one, every id is listed once and the
count matches the total the API announced. Real SCIM servers have ignored
``startIndex`` (page 1, again and again), capped ``count`` silently and
answered an unsupported filter with an empty 200: each of these must end the
listing as incomplete, never produce a short directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from syncd.model.listing import Cursor, ListingIncomplete, Page

#: a listing longer than this is refused: a server that pages forever must
#: not hold a replica (and its memory) forever
MAX_PAGES = 100_000


class Verdict(StrEnum):
    """How a discovery ended; the last one is shown by `syncd status`."""

    COMPLETE = "complete"
    #: paging broke (a skipped, repeated or short page, duplicate ids, a total mismatch)
    INCOMPLETE = "incomplete"
    #: a request failed (provider down, credentials refused, a body that is not JSON)
    FAILED = "failed"
    #: empty while the mirror holds users of the provider (needs --allow-empty)
    EMPTY = "empty"
    #: another replica holds the provider's discovery lease
    LEASED = "leased"


@dataclass(slots=True)
class Listing:
    """The pages of one listing so far. ``add`` raises ``ListingIncomplete``
    as soon as a page shows the listing can't be complete."""

    ids: list[str] = field(default_factory=list)
    pages: int = 0
    total: int | None = None
    _seen: set[str] = field(default_factory=set)
    _page_ids: dict[tuple[str, ...], Cursor] = field(default_factory=dict)

    def add(self, page: Page) -> None:
        self.pages += 1
        if self.pages > MAX_PAGES:
            raise ListingIncomplete(f"more than {MAX_PAGES} pages: the server pages forever")
        if page.echoed is not None and page.echoed != page.cursor:
            raise ListingIncomplete(
                f"asked for the page at {page.cursor!r}, the server answered the page at"
                f" {page.echoed!r} (it ignores the paging parameter)"
            )
        self._check_total(page)
        if page.ids:
            if page.ids in self._page_ids:
                raise ListingIncomplete(
                    f"the page at {page.cursor!r} repeats the page at {self._page_ids[page.ids]!r}"
                    " (the server ignores the paging parameter)"
                )
            self._page_ids[page.ids] = page.cursor
        for user_id in page.ids:
            if user_id in self._seen:
                raise ListingIncomplete(f"user {user_id!r} listed twice (at {page.cursor!r})")
            self._seen.add(user_id)
            self.ids.append(user_id)
        if page.next is not None and page.next == page.cursor:
            raise ListingIncomplete(f"paging did not advance past {page.cursor!r}")
        if page.next is not None and not page.ids:
            raise ListingIncomplete(
                f"the page at {page.cursor!r} was empty after {len(self.ids)} of"
                f" {self.total if self.total is not None else 'an unknown number of'} users"
            )

    def _check_total(self, page: Page) -> None:
        if page.total is None:
            return
        if page.total < 0:
            raise ListingIncomplete(f"the server announced a negative total ({page.total})")
        if self.total is None:
            self.total = page.total
        elif page.total != self.total:
            raise ListingIncomplete(
                f"the total changed from {self.total} to {page.total} while listing"
                " (the directory changed under the listing: the next one will tell)"
            )

    def finish(self) -> list[str]:
        """The listed ids, once the last page is in; raises ``ListingIncomplete``
        when their count is not the announced total."""
        if self.total is not None and len(self.ids) != self.total:
            raise ListingIncomplete(
                f"listed {len(self.ids)} users but the server announced {self.total}"
                " (a short page, a silently capped page size, or a filter it ignored)"
            )
        return self.ids
