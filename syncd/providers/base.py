"""The protocol every provider adapter implements, and its registry.

An adapter is one module under ``syncd/providers/``: a pure ``normalize(doc)``
that maps the provider's document to an ``Identity`` (testable with a dict),
and a thin ``Provider`` class that builds the request and makes it through
the shared HTTP layer (``syncd.http.ProviderClient``). Registering it is one
line in ``syncd/providers/__init__.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import quote

from yarl import URL

from syncd.errors import AuthError, ConfigError, MalformedResponse, NotFound, ProviderError, RateLimited
from syncd.jsonutil import loads

if TYPE_CHECKING:
    from syncd.config import ProviderConfig
    from syncd.http import ProviderClient
    from syncd.identity import Identity

#: RFC 7644 §3.12 error and §3.4.2 list response message schemas
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


class Provider(Protocol):
    """What the engine needs from a provider adapter."""

    #: the ``type`` value in the config that selects this adapter
    type: ClassVar[str]
    #: fields ignored for diffing unless the config says otherwise
    default_ignore_fields: ClassVar[tuple[str, ...]]

    def __init__(self, config: ProviderConfig, client: ProviderClient) -> None: ...

    async def fetch(self, user_id: str) -> Identity:
        """Fetch one user by id (escaped as one path segment: ``user_url``).
        Raises ``NotFound`` for the provider's own "no such user" (a 404 that
        ``not_found`` recognises; any other 404 is ``UnrecognizedNotFound``)
        and other ``ProviderError`` subclasses for everything else."""
        ...

    async def check(self) -> str:
        """Prove an authenticated read of the right shape at the configured
        URL; return what was read (``GET <url>: …``). Raises ``CheckFailed``
        naming the URL tried: on a refused credential, any 404, or a body of
        the wrong shape (a proxy's page, a wrong path, another API)."""
        ...

    @staticmethod
    def not_found(headers: Mapping[str, str], body: bytes) -> bool:
        """Is this 404 (its headers and body) the provider's own "no such
        user"? Only then may it count toward a deletion."""
        ...


class ListsUsers(Protocol):
    """Optional: adapters whose API can list users (Wacht, Fortanix, Webex,
    SCIM) also implement this; ZITADEL's list is a POST search, not wired yet."""

    def list_ids(self) -> AsyncIterator[str]:
        """Every user id the provider holds, page by page."""
        ...


def document(doc: Any) -> dict[str, Any]:
    """The provider's answer when it is a JSON object. Valid JSON of another
    kind (``null``, ``[]``, ``"x"``) is a ``MalformedResponse``: that user's
    error, with a message an operator can read, not a crash in the mapping."""
    if isinstance(doc, dict):
        return doc
    raise MalformedResponse(f"expected a JSON object, got {json_kind(doc)}")


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type (RFC 8259 §3)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """``doc[key]`` when it is a JSON object, else ``{}`` (providers omit or null
    sub-objects, e.g. ZITADEL's zero values, Wacht's missing phone)."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


# -- URLs ---------------------------------------------------------------------------------
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


# -- telling the provider's own 404 from any other ---------------------------------------------
def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, its name matched case-insensitively (a plain dict too)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value or ""


def media_type(headers: Mapping[str, str]) -> str:
    """``text/html`` of ``Content-Type: text/html; charset=utf-8``."""
    return header(headers, "Content-Type").split(";", 1)[0].strip().lower()


def json_error(headers: Mapping[str, str], body: bytes) -> dict[str, Any] | None:
    """A 404's body as a JSON object, if it is one (never an HTML page)."""
    if media_type(headers) in ("text/html", "application/xhtml+xml") or not body.strip():
        return None
    try:
        doc = loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def status_is(value: Any, status: int) -> bool:
    """``"404"`` (RFC 7644's string) or ``404`` (what some servers send); never ``true``."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value == status
    return isinstance(value, str) and value.strip() == str(status)


def has_schema(doc: dict[str, Any], urn: str) -> bool:
    """``urn`` among ``doc["schemas"]`` (schema URIs are case-insensitive, RFC 7643 §2.1)."""
    schemas = doc.get("schemas")
    return isinstance(schemas, list) and any(isinstance(s, str) and s.lower() == urn.lower() for s in schemas)


def scim_error_404(doc: dict[str, Any] | None) -> bool:
    """An RFC 7644 §3.12 error saying 404: ``{"schemas": [...Error], "status": "404"}``."""
    return doc is not None and has_schema(doc, SCIM_ERROR) and status_is(doc.get("status"), 404)


def is_scim_not_found(headers: Mapping[str, str], body: bytes) -> bool:
    """Any SCIM 2 server's "no such resource" (RFC 7644 §3.12, ``status`` a
    string there, a number on some servers). A proxy's page, a framework's
    "404: Not Found", a JSON 404 without the Error schema: not this."""
    return scim_error_404(json_error(headers, body))


# -- check() ----------------------------------------------------------------------------------
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


def _as_int(value: Any) -> int:
    """``value`` as a count (``3`` or ``"3"``), -1 when it is none."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else -1


async def get_json(client: ProviderClient, url: URL, params: Mapping[str, str] | None = None) -> Any:
    """``client.get_json`` of a URL built by ``join_url``: the ``yarl.URL`` goes
    to aiohttp as it is (a string would be re-normalised on the way)."""
    return await client.get_json(url, params=params)


async def read_for_check(client: ProviderClient, url: URL, *, search: Any = None) -> Any:
    """One read for ``check()``, a GET (or a POST of the query ``search``): any
    provider error (a 401, any 404, a 5xx, a body that is not JSON) comes out
    as ``CheckFailed`` naming the URL that failed: ``url``, or the token
    endpoint when getting a token did."""
    token_url = await _token_for_check(client)
    try:
        if search is not None:
            return await client.post_json(url, json=search)
        return await get_json(client, url)
    except ProviderError as exc:
        if token_url is not None:
            raise CheckFailed(token_url, exc, method="POST") from exc
        raise CheckFailed(url, exc, method="POST" if search is not None else "GET") from exc


async def _token_for_check(client: ProviderClient) -> str | None:
    """Get the token first (the flow ``get_json`` uses, cached for it), so a
    refusal names the token endpoint rather than the read. A token endpoint
    asking us to wait is left to ``get_json``, which shares that pause with the
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


async def check_scim_list(
    client: ProviderClient, users_url: URL, normalize: Callable[[Any], Identity]
) -> str:
    """``GET <users_url>?startIndex=1&count=1`` must answer an RFC 7644 §3.4.2
    ``ListResponse`` whose user (if any) maps: proves the token, the path
    (``connection_id``, ``org_id`` included) and the API behind it."""
    url = users_url.update_query({"startIndex": "1", "count": "1"})
    doc = await read_for_check(client, url)
    if not isinstance(doc, dict) or not has_schema(doc, SCIM_LIST):
        raise CheckFailed(url, f"expected a SCIM ListResponse, got {describe(doc)}")
    total, resources = doc.get("totalResults"), doc.get("Resources", [])
    if _as_int(total) < 0 or not isinstance(resources, list):
        raise CheckFailed(url, "a SCIM ListResponse without totalResults or with Resources not an array")
    if resources:
        try:
            normalize(resources[0])
        except ProviderError as exc:
            raise CheckFailed(url, f"the listed user does not map: {exc}") from exc
    return f"GET {url}: a SCIM ListResponse ({total} user(s))"


def describe(doc: Any) -> str:
    """What a JSON answer is, for an operator: ``an object with keys a, b`` or its kind."""
    if isinstance(doc, dict):
        keys = ", ".join(sorted(map(str, doc))[:6])
        return f"an object with keys {keys}" if keys else "an empty object"
    return json_kind(doc)
