"""``syncd check``: prove an authenticated read of the right shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from yarl import URL

from syncd.errors import AuthError, NotFound, ProviderError, RateLimited
from syncd.http import ProviderClient, Request
from syncd.providers.documents import SCIM_LIST, as_count, describe, has_schema

log = structlog.get_logger("syncd.check")

if TYPE_CHECKING:
    from syncd.model.identity import Identity
    from syncd.providers.base import Adapter


class CheckFailed(ProviderError):
    """``check()`` could not prove an authenticated read of the right shape.
    ``url`` is what was tried; ``cause`` the provider error, if one was raised
    (an ``AuthError``: the credentials were refused)."""

    def __init__(self, url: str | URL, reason: str | ProviderError, *, method: str = "GET") -> None:
        cause = reason if isinstance(reason, ProviderError) else None
        super().__init__(_check_reason(reason), provider=cause.provider if cause else "")
        self.url = str(url)
        self.method = method
        self.cause = cause

    @property
    def credentials_rejected(self) -> bool:
        return isinstance(self.cause, AuthError)

    @property
    def tried(self) -> str:
        return f"{self.method} {self.url}"


def _check_reason(reason: str | ProviderError) -> str:
    if isinstance(reason, NotFound):  # a list or a known user answered 404: not where the API is
        detail = f" detail={reason.detail!r}" if reason.detail else ""
        return f"the provider answered 404 (wrong base_url, connection_id or org_id?){detail}"
    return str(reason)


async def check(adapter: Adapter, client: ProviderClient) -> str:
    """The adapter's check read, made through the client: what was read, or
    ``CheckFailed`` naming the URL that failed (the token endpoint when
    getting a token did). Any provider error (a 401, any 404, a 5xx, a body
    that is not JSON) fails the check."""
    request = adapter.check_request()
    token_url = await _token_for_check(client)
    try:
        doc = client.document(await client.send(request))
    except ProviderError as exc:
        if token_url is not None:
            raise CheckFailed(token_url, exc, method="POST") from exc
        fallback = _fallback(adapter, exc)
        if fallback is None:
            raise CheckFailed(request.url, exc, method=request.method) from exc
        log.warning(
            "check.probe_refused",
            provider=client.provider,
            url=str(request.url),
            status=exc.status,
            error=str(exc),
            next=str(fallback.url),
        )
        return await _probe_again(adapter, client, fallback, request, exc)
    return adapter.check_answer(request, doc)


#: a check probe answered with one of these may have choked on its paging
#: parameters (one real SCIM server answers ``?count=1`` with a 500): the
#: adapter's other probe is tried before the check fails
CHOKED = frozenset({400, 500, 501})


def _fallback(adapter: Adapter, exc: ProviderError) -> Request | None:
    if isinstance(exc, AuthError | NotFound | RateLimited) or exc.status not in CHOKED:
        return None
    other = getattr(adapter, "check_fallback_request", None)
    return other() if callable(other) else None


async def _probe_again(
    adapter: Adapter, client: ProviderClient, fallback: Request, first: Request, exc: ProviderError
) -> str:
    try:
        doc = client.document(await client.send(fallback))
    except ProviderError as again:  # named as it is (a refused token stays one)
        raise CheckFailed(fallback.url, again, method=fallback.method) from again
    read = adapter.check_answer(fallback, doc)
    return (
        f"{read}; {first.method} {first.url} answered {exc.status} (the server refuses its paging parameters)"
    )


async def _token_for_check(client: ProviderClient) -> str | None:
    """Get the token first (the flow ``send`` uses, cached for it), so a
    refusal names the token endpoint rather than the read. A token endpoint
    asking us to wait is left to ``send``, which shares that pause with the
    daemons; its URL is returned, to be named when the read fails."""
    auth = client.auth
    if auth is None or not auth.renewable:
        return None
    token_url = str(getattr(auth, "url", "") or "the token endpoint")
    try:
        await auth.headers(client.session)
    except RateLimited:
        return token_url
    except ProviderError as exc:
        raise CheckFailed(token_url, exc, method="POST") from exc
    return None


def scim_list_request(users_url: URL) -> Request:
    """``GET <users_url>?startIndex=1&count=1``: a list of one."""
    return Request("GET", users_url.update_query({"startIndex": "1", "count": "1"}), kind="check")


def scim_list_answer(request: Request, doc: Any, normalize: Callable[[Any], Identity]) -> str:
    """An RFC 7644 §3.4.2 ``ListResponse`` whose user (if any) maps: proves the
    token, the path (``connection_id``, ``org_id`` included) and the API behind it."""
    url = request.url
    if not isinstance(doc, dict) or not has_schema(doc, SCIM_LIST):
        raise CheckFailed(url, f"expected a SCIM ListResponse, got {describe(doc)}")
    total, resources = doc.get("totalResults"), doc.get("Resources", [])
    if as_count(total) < 0 or not isinstance(resources, list):
        raise CheckFailed(url, "a SCIM ListResponse without totalResults or with Resources not an array")
    if resources:
        try:
            normalize(resources[0])
        except ProviderError as exc:
            raise CheckFailed(url, f"the listed user does not map: {exc}") from exc
    return f"GET {url}: a SCIM ListResponse ({total} user(s))"
