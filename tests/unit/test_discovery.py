"""Whether a listing is complete, and what a complete one changes: plain
values, no database, no network. Each hostile paging a real SCIM server has
shown ends the listing as incomplete, never as a short directory."""

from __future__ import annotations

import pytest

from syncd.discovery.listing import Listing, ListingIncomplete, Page
from syncd.discovery.reconcile import reconcile


def scim_pages(ids: list[str], count: int, total: int | None = None) -> list[Page]:
    """An honest SCIM server's pages: 1-based startIndex echoed back."""
    total = len(ids) if total is None else total
    pages = []
    for start in range(1, len(ids) + 1, count):
        chunk = tuple(ids[start - 1 : start - 1 + count])
        nxt = start + len(chunk) if start - 1 + len(chunk) < total else None
        pages.append(Page(cursor=start, ids=chunk, echoed=start, total=total, next=nxt))
    return pages


def listed(pages: list[Page]) -> list[str]:
    listing = Listing()
    for page in pages:
        listing.add(page)
    return listing.finish()


USERS = [f"u{i:03d}" for i in range(250)]


def test_an_honest_listing_is_complete_in_order():
    assert listed(scim_pages(USERS, 100)) == USERS


def test_a_server_that_ignores_start_index_is_caught_by_its_echo():
    first = scim_pages(USERS, 100)[0]
    again = Page(cursor=101, ids=first.ids, echoed=1, total=250, next=201)
    with pytest.raises(ListingIncomplete, match="ignores the paging parameter"):
        listed([first, again])


def test_a_repeated_page_without_an_echo_is_caught():
    first = Page(cursor=0, ids=tuple(USERS[:100]), total=250, next=100)
    again = Page(cursor=100, ids=first.ids, total=250, next=200)
    with pytest.raises(ListingIncomplete, match="repeats the page at 0"):
        listed([first, again])


def test_duplicate_ids_across_pages_are_refused():
    pages = [
        Page(cursor=1, ids=("a", "b"), next=3),
        Page(cursor=3, ids=("c", "a"), next=None),
    ]
    with pytest.raises(ListingIncomplete, match="'a' listed twice"):
        listed(pages)


def test_a_short_listing_against_the_announced_total_is_refused():
    pages = scim_pages(USERS[:200], 100, total=250)
    pages[-1] = Page(cursor=101, ids=pages[-1].ids, echoed=101, total=250, next=None)
    with pytest.raises(ListingIncomplete, match="listed 200 users but the server announced 250"):
        listed(pages)


def test_an_empty_page_before_the_end_is_refused():
    pages = [*scim_pages(USERS, 100)[:1], Page(cursor=101, ids=(), echoed=101, total=250, next=201)]
    with pytest.raises(ListingIncomplete, match="was empty after 100 of 250 users"):
        listed(pages)


def test_paging_that_does_not_advance_is_refused():
    pages = [Page(cursor="a", ids=("a", "b"), next="a")]
    with pytest.raises(ListingIncomplete, match="did not advance past 'a'"):
        listed(pages)


def test_a_total_that_changes_mid_listing_is_refused():
    pages = scim_pages(USERS, 100)
    pages[1] = Page(cursor=101, ids=pages[1].ids, echoed=101, total=251, next=201)
    with pytest.raises(ListingIncomplete, match="total changed from 250 to 251"):
        listed(pages)


def test_keyset_paging_without_a_total_is_complete_on_a_short_last_page():
    pages = [
        Page(cursor=None, ids=("a", "b"), next="b"),
        Page(cursor="b", ids=("c", "d"), next="d"),
        Page(cursor="d", ids=("e",), next=None),
    ]
    assert listed(pages) == ["a", "b", "c", "d", "e"]


def test_an_empty_directory_is_a_complete_empty_listing():
    assert listed([Page(cursor=1, ids=(), echoed=1, total=0, next=None)]) == []


def test_reconcile_enrols_new_users_and_makes_missing_ones_due():
    targets = {"a": "discovered", "b": "discovered", "c": "explicit"}
    result = reconcile(["a", "d", "e"], targets, scoped=False)
    assert result.new == ["d", "e"]
    assert result.missing == ["b", "c"]
    assert result.unchanged == 1


def test_a_scoped_listing_leaves_explicit_targets_outside_its_scope_alone():
    targets = {"a": "discovered", "b": "discovered", "c": "explicit"}
    result = reconcile(["a"], targets, scoped=True)
    assert result.missing == ["b"]
