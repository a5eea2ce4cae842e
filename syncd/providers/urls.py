"""Request URLs: ids sent as exactly one path segment."""

from __future__ import annotations

from urllib.parse import quote

from yarl import URL

from syncd.errors import ConfigError, ProviderError


def path_segment(value: str) -> str:
    """``value`` escaped as exactly one URL path segment (RFC 3986 §3.3): ``/``,
    ``?``, ``#``, ``%``, ``+`` and the rest are percent-encoded, so an id can
    neither reach another path nor add a query. ``.``/``..`` (and the empty
    string) cannot be one segment: every server and proxy on the way resolves
    them (RFC 3986 §5.2.4), percent-encoded or not; ``ValueError``."""
    if value in ("", ".", ".."):
        raise ValueError(f"{value!r} cannot be sent as a URL path segment")
    return quote(value, safe="")


def join_url(base: str | URL, *segments: str) -> URL:
    """``base`` followed by each of ``segments`` as one path segment. Built
    ``encoded=True``: given a string, aiohttp would re-normalise the URL
    (decode ``%2E``, resolve ``..``, decode ``%3D``) after we escaped it."""
    root = str(base) if isinstance(base, URL) else str(URL(base))
    path = "".join("/" + path_segment(s) for s in segments)
    return URL(root.rstrip("/") + path, encoded=True)


def config_url(base: str, *segments: str, key: str) -> URL:
    """``join_url`` for segments from the config (``connection_id``, ``org_id``):
    one that can't be a path segment is the config's error, naming ``key``."""
    try:
        return join_url(base, *segments)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def user_url(base: str | URL, user_id: str, provider: str = "") -> URL:
    """The URL of one user: ``base/<user_id as one segment>``. An id that can't
    be one segment is that user's error (a ``ProviderError``), sent nowhere."""
    try:
        return join_url(base, str(user_id))
    except ValueError as exc:
        raise ProviderError(f"user id {exc}", provider=provider) from None
