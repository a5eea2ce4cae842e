"""Reading provider documents: JSON objects, their kinds, and 404 bodies.

Pure functions shared by the adapters' ``normalize`` and ``is_not_found``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.errors import MalformedResponse
from syncd.jsonutil import loads

#: RFC 7644 §3.12 error and §3.4.2 list response message schemas
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


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


def describe(doc: Any) -> str:
    """What a JSON answer is, for an operator: ``an object with keys a, b`` or its kind."""
    if isinstance(doc, dict):
        keys = ", ".join(sorted(map(str, doc))[:6])
        return f"an object with keys {keys}" if keys else "an empty object"
    return json_kind(doc)


def as_count(value: Any) -> int:
    """``value`` as a count (``3`` or ``"3"``), -1 when it is none."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else -1


# -- telling the provider's own 404 from any other ---------------------------------------------
def ci_get(doc: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """``doc[name]``, the name matched exactly, else case-insensitively (a
    header's; a SCIM attribute's, RFC 7643 §2.1); ``default`` when there is
    no such key. A key present with the exact name wins, even when null."""
    if name in doc:
        return doc[name]
    lowered = name.lower()
    for key, found in doc.items():  # a loop, not next(genexpr): this runs some 30 times per SCIM user
        if key.lower() == lowered:
            return found
    return default


def text_value(value: Any) -> str | None:
    """A JSON string or number as text, else None (an empty string, true,
    null, an object or array is no value). Migration 016 fills the mirror's
    columns by the same rule, in SQL."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value) or None


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, its name matched case-insensitively (a plain dict too)."""
    return ci_get(headers, name) or ""


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
