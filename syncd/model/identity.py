"""The normalized record every provider's document is mapped to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal, TypeVar

import orjson

Kind = Literal["human", "machine"]
_T = TypeVar("_T")


def _dict_init(cls: type[_T]) -> type[_T]:
    """Give a frozen dataclass an ``__init__`` that fills the instance's
    ``__dict__`` in one call. The generated one assigns each field through
    ``object.__setattr__`` (a frozen class can't assign its own attributes):
    building an Identity and its Email that way was 2.4 % of a created user's
    instructions (callgrind). Same keyword-only signature, defaults and
    default factories as the dataclass's own; instances stay frozen."""
    ns: dict[str, Any] = {"MISSING": MISSING}
    params, factories = [], []
    all_fields = fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or not all(f.init for f in all_fields):
        raise TypeError(f"_dict_init can't build {cls.__qualname__}: __post_init__ or init=False fields")
    for f in all_fields:
        if f.default is not MISSING:
            ns[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not MISSING:
            ns[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=MISSING")
            factories.append(f"    if {f.name} is MISSING:\n        {f.name} = _factory_{f.name}()\n")
        else:
            params.append(f.name)
    values = ", ".join(f"{f.name!r}: {f.name}" for f in all_fields)
    source = f"def __init__(self, *, {', '.join(params)}):\n{''.join(factories)}"
    exec(source + f"    self.__dict__.update({{{values}}})\n", ns)
    ns["__init__"].__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = ns["__init__"]  # type: ignore[method-assign]
    return cls


@_dict_init
@dataclass(frozen=True, kw_only=True)
class Email:
    value: str
    type: str | None = None
    primary: bool | None = None
    verified: bool | None = None


@_dict_init
@dataclass(frozen=True, kw_only=True)
class Identity:
    """One user as syncd understands it: SCIM-like core fields plus the raw document.

    ``raw`` is the provider's document with credential material already
    stripped (see ``syncd.redact``); anything not mapped to a core field stays
    there.
    """

    user_id: str
    username: str | None = None
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    email_verified: bool | None = None
    emails: tuple[Email, ...] = ()
    phone: str | None = None
    active: bool | None = None
    state: str | None = None
    kind: Kind = "human"
    locale: str | None = None
    #: the SCIM enterprise extension (RFC 7643 §4.3); ``manager_id`` is its ``manager.value``
    employee_number: str | None = None
    department: str | None = None
    cost_center: str | None = None
    organization: str | None = None
    division: str | None = None
    manager_id: str | None = None
    updated_at: datetime | None = None
    source_version: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def canonical_json(self) -> bytes:
        """The record as canonical JSON (sorted keys, no whitespace): the bytes
        that are hashed, stored and put in events. orjson serializes the
        dataclass itself, so this costs a few µs for every fetched user."""
        return orjson.dumps(self, option=orjson.OPT_SORT_KEYS, default=_plain)

    def to_doc(self) -> dict[str, Any]:
        """The record as the JSON document that is diffed, stored and put in events."""
        doc: dict[str, Any] = orjson.loads(self.canonical_json())
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Identity:
        kw: dict[str, Any] = {k: doc.get(k) for k in CORE_FIELDS if k in doc}
        kw["emails"] = tuple(Email(**e) for e in doc.get("emails") or ())
        if isinstance(kw.get("updated_at"), str):  # from JSON; a database row gives a datetime
            kw["updated_at"] = datetime.fromisoformat(kw["updated_at"])
        kw["raw"] = doc.get("raw") or {}
        return cls(**kw)


CORE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Identity))


def _plain(value: Any) -> Any:
    """What orjson can't serialize itself: a raw document that is a Mapping but no dict."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def primary_email(emails: tuple[Email, ...]) -> Email | None:
    """RFC 7643 §2.4: the one marked primary, else the first."""
    for e in emails:
        if e.primary:
            return e
    return emails[0] if emails else None


def without_nul(identity: Identity) -> Identity:
    """``identity`` with every NUL character replaced by U+FFFD: PostgreSQL
    stores none in text or jsonb, and a provider may still send ``\\u0000``."""
    cleaned: Identity = _without_nul(identity)
    return cleaned


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Email | Identity):
        return replace(value, **{f.name: _without_nul(getattr(value, f.name)) for f in fields(value)})
    if isinstance(value, Mapping):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_without_nul(v) for v in value)
    return value
