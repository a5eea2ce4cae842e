"""Reading a leased batch many users per request (``reads.ReadMode``).

A batch answer is evidence about the users it holds, nothing more: a user
missing from it is read by id (which may 404 and start the usual
confirmation), never taken as deleted; a document for a user not asked for
means the server ignored the filter, so the answer is dropped and batching
switched off for the provider; an answer with none of the users asked for,
though they answer by id, switches it off too."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from syncd.errors import AuthError, MalformedResponse, ProviderError
from syncd.model.identity import Identity
from syncd.providers.base import BatchReader
from syncd.sync.plan import Outcome, mirrored
from syncd.sync.reads import disable_batching
from syncd.sync.runtime import ProviderRuntime

log = structlog.get_logger("syncd.sync")

#: a batch request answered with one of these: the server won't take the
#: filter (unsupported, too long a URL, too many ids); read by id instead
REFUSED_BATCH = frozenset({400, 403, 404, 405, 413, 414, 422, 501})

ById = Callable[[ProviderRuntime, Sequence[Any]], Awaitable[list[Outcome]]]
MakeOutcome = Callable[[ProviderRuntime, Any, Identity, str | None], Outcome]


async def read_in_batches(
    runtime: ProviderRuntime, batch: Sequence[Any], *, by_id: ById, outcome: MakeOutcome
) -> list[Outcome]:
    """Every target's outcome, ``batch_size`` ids per request (the requests
    of one leased batch in flight together, under the provider's gate)."""
    size = runtime.reads.batch_size
    chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
    parts = await asyncio.gather(*(_read_chunk(runtime, chunk, by_id, outcome) for chunk in chunks))
    return [o for part in parts for o in part]


async def _read_chunk(
    runtime: ProviderRuntime, targets: Sequence[Any], by_id: ById, outcome: MakeOutcome
) -> list[Outcome]:
    adapter = runtime.connection.adapter
    assert isinstance(adapter, BatchReader)
    ids = [t["user_id"] for t in targets]
    try:
        response = await runtime.client.send(adapter.batch_request(ids))
        docs = adapter.batch_answer(runtime.client.document(response))
    except MalformedResponse as exc:
        # one user's hostile document (too deep; too large together) spoils
        # the whole answer: these users are read one by one, this time
        log.info("reads.batch_unreadable", provider=runtime.name, users=len(ids), error=str(exc))
        return await by_id(runtime, targets)
    except ProviderError as exc:
        if exc.status in REFUSED_BATCH and not isinstance(exc, AuthError):
            disable_batching(runtime, f"a batch read was refused: {exc}")
            return await by_id(runtime, targets)
        # down, rate limited past its waits, credentials refused: as by id
        return [Outcome(t, error=exc) for t in targets]
    found = _found(runtime, docs, set(ids), _known_fingerprints(targets))
    if found is None:
        return await by_id(runtime, targets)
    # ZITADEL answers a batch from the projection its listing reads, which can
    # lag a write: a document older than the mirror's is read by id instead
    stale = {t["user_id"] for t in targets if _stale(found.get(t["user_id"]), t)}
    for uid in stale:
        del found[uid]
    missing = [t for t in targets if t["user_id"] not in found]
    read_alone = {o.target["user_id"]: o for o in await by_id(runtime, missing)} if missing else {}
    answered = [
        o
        for uid, o in read_alone.items()
        if uid not in stale and (o.record is not None or o.unchanged_answer)
    ]
    if missing and not found and not stale and answered:
        disable_batching(
            runtime,
            f"a batch answer held none of the {len(ids)} users asked for, though they answer by id"
            " (the server ignores the id filter)",
        )
    elif len(answered) == len(missing) - len(stale) >= max(2, len(ids) // 10):
        # every user left out answers by id: the server caps its pages below
        # what it announced (scim2-server's maxPageSize does): ask for fewer
        _shrink(runtime, len(found))
    return [
        _answered(runtime, t, found[t["user_id"]], outcome)
        if t["user_id"] in found
        else read_alone[t["user_id"]]
        for t in targets
    ]


@dataclass(frozen=True, slots=True)
class _Read:
    """One user's document in a batch answer: mapped, or (``identity`` None)
    the very document its last read gave."""

    identity: Identity | None
    fingerprint: str | None


def _stale(read: _Read | None, target: Any) -> bool:
    return read is not None and read.identity is not None and older_than_mirror(read.identity, target)


def older_than_mirror(identity: Identity, target: Any) -> bool:
    """The document says it was last modified before the mirrored one was: a
    listing or batch answer read from a lagging projection. Equal times are
    not older (Wacht's second precision: edits within a second share one)."""
    mirror = target.get("mirror_updated_at")
    return (
        mirrored(target)
        and mirror is not None
        and identity.updated_at is not None
        and identity.updated_at < mirror
    )


def _answered(runtime: ProviderRuntime, target: Any, read: _Read, outcome: MakeOutcome) -> Outcome:
    if read.identity is None:
        return Outcome(target, same_body=True, body_hash=read.fingerprint)
    return outcome(runtime, target, read.identity, read.fingerprint)


def document_fingerprint(salt: bytes, doc: Any) -> str:
    """A batch document's fingerprint: its canonical bytes (a batch answer has
    no per-user body), apart from a by-id body's by the prefix, salted like it
    (``Response.fingerprint``). Equal fingerprints are equal documents, so
    equal records: neither is mapped nor hashed again."""
    try:
        body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # too deep: mapping it says why
        return ""
    return hashlib.sha256(salt + b"batch:" + body).hexdigest()


def _known_fingerprints(targets: Sequence[Any]) -> dict[str, str]:
    """The last fingerprint of each asked user that has a mirror row to be
    unchanged against (as by id: ``fetch.fetch_target``), to its id."""
    return {t["body_hash"]: t["user_id"] for t in targets if t.get("body_hash") and mirrored(t)}


def _shrink(runtime: ProviderRuntime, answered: int) -> None:
    reads = runtime.reads
    if 2 <= answered < reads.batch_size:
        log.warning("reads.batch_capped", provider=runtime.name, asked=reads.batch_size, answered=answered)
        reads.batch_size = answered


def _found(
    runtime: ProviderRuntime, docs: list[Any], asked: set[str], known: dict[str, str]
) -> dict[str, _Read] | None:
    """The answer's users by id; None (batching switched off) when it holds a
    user not asked for. A document that doesn't map is left to its by-id read;
    one whose fingerprint is an asked user's last one is that user, unchanged
    (the fingerprint covers its id)."""
    found: dict[str, _Read] = {}
    foreign = 0
    salt, normalize = runtime.salt, runtime.connection.adapter.normalize
    for doc in docs:
        fingerprint = document_fingerprint(salt, doc)
        same = known.get(fingerprint) if fingerprint else None
        if same is not None:
            if same in found:
                foreign += 1
            else:
                found[same] = _Read(None, fingerprint)
            continue
        try:
            identity = normalize(doc)
        except Exception as exc:  # its by-id read gives that user's error
            log.info("reads.batch_document_unmapped", provider=runtime.name, error=str(exc))
            continue
        if identity.user_id not in asked or identity.user_id in found:
            foreign += 1
        else:
            found[identity.user_id] = _Read(identity, fingerprint or None)
    if foreign:
        disable_batching(
            runtime,
            f"a batch answer held {foreign} user(s) not asked for (the server ignores the id filter);"
            " the answer was dropped",
        )
        return None
    return found
