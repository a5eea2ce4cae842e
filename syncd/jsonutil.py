"""JSON in one place: orjson for speed, one canonical form for hashing."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from syncd.errors import MalformedResponse


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def canonical(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: equal documents give equal bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def content_hash(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def parse_body(body: bytes, *, provider: str = "", status: int | None = None) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        snippet = body[:120].decode("utf-8", "replace")
        raise MalformedResponse(
            f"body is not valid JSON ({exc})", provider=provider, status=status, detail=snippet
        ) from exc
