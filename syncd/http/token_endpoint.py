"""One POST of an auth flow (a token endpoint, Fortanix's select_account) and
what its answer means. Stricter than a read: a redirect is never followed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp

from syncd import metrics
from syncd.errors import AuthError, ProviderError, TransientError
from syncd.http import defaults
from syncd.http.response import rate_limited, read_body


async def post_checked(
    session: aiohttp.ClientSession,
    url: str,
    *,
    provider: str,
    deadline: float,
    what: str = "token endpoint",
    data: Mapping[str, str] | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    """POST one step of the auth flow; ``(status, body)`` of a 2xx answer.

    Transport errors are a ``TransientError``; the answer is read by
    ``refusal`` below."""
    metrics.REQUESTS.labels(provider, "token").inc()
    try:
        async with asyncio.timeout(deadline):
            async with session.post(
                url, data=data, json=json, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                location = resp.headers.get("Location")
                body = await read_body(resp, defaults.MAX_BODY, provider=provider, strict=status < 300)
    except (aiohttp.ClientError, TimeoutError) as exc:
        kind = "timeout" if isinstance(exc, TimeoutError) else exc.__class__.__name__
        raise TransientError(f"{what} unreachable: {kind}", provider=provider) from exc
    error = refusal(url, status, body, retry_after, location, provider=provider, what=what)
    if error is not None:
        raise error
    return status, body


def refusal(
    url: str,
    status: int,
    body: bytes,
    retry_after: str | None,
    location: str | None,
    *,
    provider: str,
    what: str,
) -> ProviderError | None:
    """The error an auth step's answer is (None for a 2xx).

    400/401/403 are an ``AuthError`` (the credentials), 429/503/423 a
    ``RateLimited`` carrying the ``Retry-After`` instant (the HTTP layer
    pauses the provider on it), other 5xx a ``TransientError``, a redirect a
    ``ProviderError``: it is never followed, not even within the origin. A
    307/308 would send the credentials in the body again, to wherever the
    Location says, and a 301/302/303 turns the POST into a GET that cannot
    yield a token; the token URL is configuration, and a redirect means it
    is wrong."""
    if 300 <= status < 400:
        return ProviderError(
            # no "key: value" look: error text is scrubbed of secret-looking fields
            f"{what} {url} redirected ({status}) to {location}, not followed; configure the final URL",
            provider=provider,
            status=status,
        )
    if status < 300:
        return None
    detail = body[:200].decode("utf-8", "replace").strip() or None
    common: dict[str, Any] = {"provider": provider, "status": status, "detail": detail}
    limited = rate_limited(retry_after, f"{what} asked us to slow down ({status})", **common)
    if limited is not None:
        return limited
    if status in (400, 401, 403):
        message = (
            "credentials refused by the token endpoint" if what == "token endpoint" else f"{what} refused"
        )
        return AuthError(message, **common)
    cls = TransientError if status >= 500 else ProviderError
    return cls(f"{what} failed", **common)
