"""Deciding what changed: a canonical hash first, a JSON Patch when it differs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import jsonpatch

from syncd.jsonutil import content_hash
from syncd.model.identity import CORE_FIELDS, Identity


def without_fields(doc: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """``doc`` minus the dotted ``paths`` (``doc`` itself is left as it is).

    A path whose first part is a core field (``updated_at``) or ``raw`` is
    taken from the record; any other path is a key of the provider's own
    document (``last_logged_in_at``, ``details.changeDate``), so operators can
    write what they see in the provider's API. A key is matched exactly, else
    case-insensitively (SCIM attribute names are, RFC 7643 §2.1). Only the
    containers on a path are copied, not the whole document: this runs twice
    for every changed user.
    """
    paths = list(paths)
    if not paths:
        return doc
    out = dict(doc)
    for path in paths:
        parts = path.split(".")
        if parts[0] not in CORE_FIELDS:
            parts = ["raw", *parts]
        _drop(out, parts)
    return out


def _drop(node: dict[str, Any] | list[Any], parts: list[str]) -> None:
    """Remove ``parts`` from ``node``, a copy private to ``without_fields``,
    copying each container on the way down before changing it."""
    key: str | int | None = parts[0]
    if isinstance(node, dict):
        key = _key(node, parts[0])
        if key is None:
            return
        if len(parts) == 1:
            del node[key]
            return
    elif parts[0].isdigit() and int(parts[0]) < len(node) and len(parts) > 1:
        key = int(parts[0])
    else:
        return
    child = node[key]  # type: ignore[index]
    if isinstance(child, dict | list):
        child = dict(child) if isinstance(child, dict) else list(child)
        node[key] = child  # type: ignore[index]
        _drop(child, parts[1:])


def _key(node: dict[str, Any], name: str) -> str | None:
    if name in node:
        return name
    lowered = name.lower()
    return next((k for k in node if isinstance(k, str) and k.lower() == lowered), None)


def record_hash(doc: dict[str, Any], ignore: Iterable[str] = ()) -> str:
    """The hash that decides "unchanged": of the record without ignored fields."""
    return content_hash(without_fields(doc, ignore))


def record_json_and_hash(identity: Identity) -> tuple[bytes, str]:
    """The record's canonical JSON and its hash, of those very bytes: equal
    hashes mean the mirror row holds this record, every field and the raw
    document included. (Whether a difference is worth an event is decided
    after, by ``same_but_for``: ignored and representation fields differ
    quietly.)"""
    record = identity.canonical_json()
    return record, hashlib.sha256(record).hexdigest()


def same_but_for(before: dict[str, Any], after: dict[str, Any], paths: Sequence[str]) -> bool:
    """``before`` and ``after`` differ only in ``paths`` (or not at all)."""
    return record_hash(before, paths) == record_hash(after, paths)


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
