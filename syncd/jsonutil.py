"""JSON in one place: orjson for speed, one canonical form for hashing."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from syncd.errors import DocumentRefused, MalformedResponse


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def canonical(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: equal documents give equal bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def content_hash(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


#: a provider document nested deeper than this is refused. No user document
#: is more than ~10 levels deep; orjson parses up to 1024 but encodes only 254,
#: and a body that parses but cannot be encoded again (into the record, the
#: event, the jsonb parameter) must fail as that user's error, before any of it
MAX_DEPTH = 64


def parse_body(body: bytes, *, provider: str = "", status: int | None = None) -> Any:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        snippet = body[:120].decode("utf-8", "replace")
        raise MalformedResponse(
            f"body is not valid JSON ({exc})", provider=provider, status=status, detail=snippet
        ) from exc
    # two C-speed counts rule out deep nesting for nearly every body: it takes
    # more than MAX_DEPTH brackets to nest that deep
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH and depth(doc) > MAX_DEPTH:
        raise DocumentRefused(
            f"document nested more than {MAX_DEPTH} levels deep", provider=provider, status=status
        )
    return doc


def depth(value: Any) -> int:
    """How deeply JSON arrays and objects nest in ``value`` (a scalar is 0);
    iterative, so a hostile document can't exhaust Python's stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        level += 1
        if level > deepest:
            deepest = level
            if deepest > 4 * MAX_DEPTH:
                break  # deep enough to refuse: don't walk a million levels
        stack.extend((child, level) for child in children if isinstance(child, dict | list))
    return deepest
