"""The one HTTP layer every provider goes through (one concept per module):

- ``client``: ``ProviderClient``, which sends an adapter's ``Request`` and
  returns a ``Response`` (status, headers, body, fingerprint);
- ``response``: reading a body within a limit, and what a status means;
- ``redirects``: the same-origin rule;
- ``retry``: the one ``RetryPolicy`` (full-jitter backoff, ``Retry-After``);
- ``gate`` and ``circuit``: when a request may be sent;
- ``auth``, ``token_state``, ``token_endpoint``: bearer tokens and token flows;
- ``session``: the aiohttp session; ``defaults``: every default, once.
"""

from __future__ import annotations

from syncd.http.auth import Auth, BasicAuth, BearerToken, HeaderToken, StaticHeader, TokenFlow, basic_auth
from syncd.http.circuit import CircuitBreaker
from syncd.http.client import ProviderClient
from syncd.http.defaults import MAX_BODY
from syncd.http.gate import Gate
from syncd.http.redirects import MAX_REDIRECTS, REDIRECT_STATUSES, same_origin_redirect
from syncd.http.response import RATE_LIMIT_STATUSES, ErrorDetail, NotFoundCheck, Request, Response, read_body
from syncd.http.retry import RetryAfter, RetryPolicy
from syncd.http.session import make_session
from syncd.http.token_state import TokenState

__all__ = [
    "MAX_BODY",
    "MAX_REDIRECTS",
    "RATE_LIMIT_STATUSES",
    "REDIRECT_STATUSES",
    "Auth",
    "BasicAuth",
    "BearerToken",
    "CircuitBreaker",
    "ErrorDetail",
    "Gate",
    "HeaderToken",
    "NotFoundCheck",
    "ProviderClient",
    "Request",
    "Response",
    "RetryAfter",
    "RetryPolicy",
    "StaticHeader",
    "TokenFlow",
    "TokenState",
    "basic_auth",
    "make_session",
    "read_body",
    "same_origin_redirect",
]
