"""Redirects (RFC 9110 §15.4): followed only within the request's origin."""

from __future__ import annotations

import aiohttp
from yarl import URL

#: redirects we may follow, and only within the request's origin
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: same-origin redirects followed for one GET before it is a provider error
MAX_REDIRECTS = 3
#: what is read of a redirect's body (to keep the connection alive), at most
REDIRECT_BODY = 64 * 1024


def same_origin_redirect(resp: aiohttp.ClientResponse) -> URL | None:
    """Where a redirect points, resolved against the URL that answered it, if it
    stays within that URL's origin (scheme, host, port; RFC 6454 §4); else None."""
    location = resp.headers.get("Location")
    if not location:
        return None
    try:
        target = resp.url.join(URL(location))
    except ValueError:
        return None
    return target if origin(target) == origin(resp.url) else None


def origin(url: URL) -> tuple[str, str, int | None]:
    return url.scheme.lower(), (url.host or "").lower(), url.port


def leaves_origin(url: str, location: str) -> bool:
    try:
        return origin(URL(url).join(URL(location))) != origin(URL(url))
    except ValueError:  # not even a URL: nowhere we would go
        return True


def not_followed(url: str, location: str | None) -> str:
    """Why a redirect answer is a provider error: it was not (or no longer) followed."""
    if not location:
        return f"redirect without a Location from {url}"
    if leaves_origin(url, location):
        return f"redirect to another origin not followed: {url} -> {location}"
    return f"too many redirects (more than {MAX_REDIRECTS}): {url} -> {location}"
