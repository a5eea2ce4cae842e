"""The outbox contract in code: event ids, payloads and their patches.

An event's id is deterministic (from provider, user and the before/after
content hashes), so two writers racing on one change cannot both insert it;
its payload is what downstream consumers read (README: Tables for
downstream readers)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

import orjson

from syncd.model.diff import patch
from syncd.model.identity import Identity

#: namespace of the deterministic outbox event ids (uuid5)
EVENT_NAMESPACE = uuid.UUID("6f1c1d3e-5b8a-4c47-9a52-3e0c2b9d7a11")
_EVENT_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def event_id(
    provider: str,
    user_id: str,
    kind: str,
    before_hash: str | None,
    after_hash: str | None,
    marker: datetime | None,
) -> str:
    """Deterministic: two writers racing on the same change compute the same id
    (and the outbox's primary key lets only one in). ``marker`` is a timestamp
    both racing writers read but a later identical change cannot share: it
    tells A→B apart from a later A→B after B→A.

    It is ``str(uuid.uuid5(EVENT_NAMESPACE, name))``, built from the SHA-1 by
    hand and returned as text, which asyncpg encodes without a UUID object."""
    name = "\x1f".join(
        (
            provider,
            user_id,
            kind,
            before_hash or "",
            after_hash or "",
            marker.isoformat() if marker else "",
        )
    )
    digest = bytearray(hashlib.sha1(_EVENT_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def record_from_row(row: Any) -> dict[str, Any]:
    """The mirror row as the record document it was written from."""
    return Identity.from_doc(dict(row.items())).to_doc()


def event_payload(
    provider: str,
    provider_type: str,
    user_id: str,
    version: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | orjson.Fragment | None,
    observed: str,
) -> dict[str, Any]:
    """An outbox event's payload. The patch is left out of a creation: the
    store builds it from ``after`` so the document is sent only once (and
    ``after`` may then be the record's canonical JSON, as an orjson Fragment)."""
    payload: dict[str, Any] = {
        "provider": provider,
        "provider_type": provider_type,
        "user_id": user_id,
        "version": version,
        "before": before,
        "after": after,
        "observed_at": observed,
    }
    if before is not None:
        assert not isinstance(after, orjson.Fragment), "only a creation's record is passed as bytes"
        payload["patch"] = patch(before, after)
    return payload


def event_patch(payload: dict[str, Any], record: bytes) -> list[dict[str, Any]]:
    """The event's JSON Patch as consumers read it; a creation's is built by
    the store (one "add" of the whole ``record`` at the root)."""
    if "patch" in payload:
        return list(payload["patch"])
    return patch(None, orjson.loads(record))
