"""Deciding what changed: a canonical hash first, a JSON Patch when it differs."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import jsonpatch
import orjson

from syncd.jsonutil import content_hash
from syncd.model.identity import CORE_FIELDS, Identity


def without_fields(doc: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """``doc`` minus the dotted ``paths``.

    A path whose first part is a core field (``updated_at``) or ``raw`` is
    taken from the record; any other path is a key of the provider's own
    document (``last_logged_in_at``, ``details.changeDate``), so operators can
    write what they see in the provider's API.
    """
    paths = list(paths)
    if not paths:
        return doc
    out = copy.deepcopy(doc)
    for path in paths:
        parts = path.split(".")
        if parts[0] not in CORE_FIELDS:
            parts = ["raw", *parts]
        _drop(out, parts)
    return out


def _drop(node: Any, parts: list[str]) -> None:
    for part in parts[:-1]:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def record_hash(doc: dict[str, Any], ignore: Iterable[str] = ()) -> str:
    """The hash that decides "unchanged": of the record without ignored fields."""
    return content_hash(without_fields(doc, ignore))


def record_json_and_hash(identity: Identity, ignore: Sequence[str] = ()) -> tuple[bytes, str]:
    """The record's canonical JSON and the hash that decides "unchanged". With
    nothing ignored the hash is of those very bytes, so a creation's event
    carries them as they are instead of encoding the record again."""
    record = identity.canonical_json()
    if ignore:
        return record, record_hash(orjson.loads(record), ignore)
    return record, hashlib.sha256(record).hexdigest()


def patch(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[dict[str, Any]]:
    """RFC 6902 operations that turn ``before`` into ``after``.

    A creation is one "add" of the whole document at the root (RFC 6902
    §4.1, path "" per RFC 6901), a deletion one "remove" per top-level field,
    both written directly (the hot path of a first sync); a real update is
    diffed by jsonpatch. Record keys are our own field names, so they need
    no RFC 6901 escaping."""
    if not before:
        return [{"op": "add", "path": "", "value": after}]
    if not after:
        return [{"op": "remove", "path": f"/{k}"} for k in before]
    return jsonpatch.make_patch(before, after).patch
