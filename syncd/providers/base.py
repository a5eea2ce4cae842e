"""What a provider type is: its registry entry and its adapter.

A provider type is one module under ``syncd/providers/`` ending in
``PROVIDER = ProviderType(...)``: its config model, its pure ``normalize``,
its error-body reading, its own 404, its auth flow and its adapter class.
An adapter builds requests and maps answers; it does no I/O (the client in
``syncd.http`` sends its requests: see ``fetch``, ``check``, ``listing``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from syncd.configbase import ProviderBase
from syncd.http import Auth, ErrorDetail, NotFoundCheck, Request
from syncd.model.listing import Cursor, FeedPage, ListSettings, Page
from syncd.providers.check import CheckFailed
from syncd.providers.urls import config_url, join_url, path_segment, user_url

if TYPE_CHECKING:
    from syncd.model.identity import Identity


class Adapter(Protocol):
    """What the sync needs from one provider, as requests and mappings."""

    @property
    def default_headers(self) -> Mapping[str, str]:
        """Headers every request carries (ZITADEL's ``x-zitadel-orgid``)."""
        ...

    def user_request(self, user_id: str) -> Request:
        """The request for one user (its id escaped as one path segment:
        ``urls.user_url``); the provider's own "no such user" answer is a
        ``NotFound`` (a 404 that ``not_found`` recognises)."""
        ...

    def normalize(self, doc: Any) -> Identity: ...

    def check_request(self) -> Request:
        """An authenticated read of the right shape at the configured URL."""
        ...

    def check_answer(self, request: Request, doc: Any) -> str:
        """What the check read (``GET <url>: …``), or ``CheckFailed`` naming
        the URL: a body of the wrong shape (a proxy's page, another API)."""
        ...


@runtime_checkable
class Lister(Protocol):
    """Optional: adapters whose API can list users. The walk
    (``providers.listing``) sends the settings request (None: the reference
    fixes them), then one page request per cursor until a page has no next."""

    def list_settings_request(self) -> Request | None: ...

    def list_settings(self, doc: Any) -> ListSettings:
        """The page size (and whether ``discover_filter`` can be honoured:
        else a ``ConfigError``) from the settings answer (None if none)."""
        ...

    def list_request(self, cursor: Cursor, settings: ListSettings) -> Request: ...

    def list_page(self, doc: Any, cursor: Cursor, settings: ListSettings) -> Page:
        """The page's ids, total, echoed and next cursor; a page that is not
        of the listing's shape is a ``MalformedResponse``."""
        ...


@runtime_checkable
class BatchReader(Protocol):
    """Optional: adapters whose API reads many users by id in one request.
    The settings answer is ``Lister.list_settings_request``'s (SCIM's
    ServiceProviderConfig), or None where the reference fixes them."""

    def batch_limit(self, settings: Any) -> int:
        """Ids one request may ask for; 0 when the server can't batch."""
        ...

    def batch_request(self, user_ids: Sequence[str]) -> Request: ...

    def batch_answer(self, doc: Any) -> list[Any]:
        """The user documents of the answer, each as the by-id read gives it
        (so a user's hash is the same either way); not yet checked to be the
        ones asked for."""
        ...


@runtime_checkable
class FeedReader(Protocol):
    """Optional: adapters whose API lists the users changed since a time.
    The settings are ``Lister``'s (SCIM's ServiceProviderConfig)."""

    #: True: the feed is every user, newest change first, and a walk stops at
    #: the first change older than it asked for (Webex: not filterable by
    #: time); False: the server answers only the changes asked for (SCIM's
    #: ``meta.lastModified gt``)
    feed_sorted: bool

    def feed_request(self, cursor: Cursor, settings: ListSettings, since: datetime) -> Request: ...

    def feed_page(self, doc: Any, cursor: Cursor, settings: ListSettings) -> FeedPage: ...


#: what an admin may look a user up by (`syncd targets add --username/--email`)
SearchBy = Literal["username", "email"]


@runtime_checkable
class Searcher(Protocol):
    """Optional: adapters whose API can find a user by user name or email."""

    def search_request(self, by: SearchBy, value: str) -> Request: ...

    def search_answer(self, doc: Any, by: SearchBy, value: str) -> list[str]:
        """The ids of the answered users whose ``by`` equals ``value``, checked
        here (a server that ignores the filter answers everyone)."""
        ...


def has_value(identity: Identity, by: SearchBy, value: str) -> bool:
    """Whether a found user's user name or one of its emails is ``value``, in
    any case (SCIM's userName is not case-exact, nor are ZITADEL's login
    names): a search answer is checked, not trusted."""
    wanted = value.casefold()
    if by == "username":
        return identity.username is not None and identity.username.casefold() == wanted
    return any(e.value.casefold() == wanted for e in identity.emails) or (
        identity.email is not None and identity.email.casefold() == wanted
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderType:
    """One provider type, declared by its module (``PROVIDER = ProviderType(...)``)."""

    #: the ``type`` value in the config, and the module's name
    name: str
    #: its ``[[providers]]`` table: a ``ProviderBase`` with ``type: Literal[name]``
    config: type[ProviderBase]
    #: ``adapter(config)``: the pure adapter for one configured provider
    adapter: Callable[[Any], Adapter]
    #: ``make_auth(config)``: a ``BearerToken`` or a ``TokenFlow`` (reads secrets)
    make_auth: Callable[[Any], Auth]
    normalize: Callable[[Any], Identity]
    #: the message of its error bodies
    error_detail: ErrorDetail
    #: is this 404 (headers, body) its own "no such user"?
    not_found: NotFoundCheck
    #: its request id header (logged with every error)
    tracking_header: str | None = None
    #: fields ignored for diffing unless the config says otherwise
    default_ignore_fields: tuple[str, ...] = ()
    #: fields that describe the representation, not the user (SCIM
    #: ``meta.location``, a change marker): a difference in them alone gives
    #: no event unless ``representation_events`` (the raw is kept up to date)
    representation_fields: tuple[str, ...] = ()


__all__ = [
    "Adapter",
    "BatchReader",
    "CheckFailed",
    "FeedReader",
    "Lister",
    "ProviderType",
    "SearchBy",
    "Searcher",
    "config_url",
    "has_value",
    "join_url",
    "path_segment",
    "user_url",
]
