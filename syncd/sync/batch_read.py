"""Reading a leased batch many users per request (``reads.ReadMode``).

A batch answer is evidence about the users it holds, nothing more: a user
missing from it is read by id (which may 404 and start the usual
confirmation), never taken as deleted; a document for a user not asked for
means the server ignored the filter, so the answer is dropped and batching
switched off for the provider; an answer with none of the users asked for,
though they answer by id, switches it off too."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from syncd.errors import AuthError, MalformedResponse, ProviderError
from syncd.model.identity import Identity
from syncd.providers.base import BatchReader
from syncd.sync.plan import Outcome
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
    found = _found(runtime, docs, set(ids))
    if found is None:
        return await by_id(runtime, targets)
    missing = [t for t in targets if t["user_id"] not in found]
    read_alone = {o.target["user_id"]: o for o in await by_id(runtime, missing)} if missing else {}
    answered = [o for o in read_alone.values() if o.record is not None or o.same_body]
    if missing and not found and answered:
        disable_batching(
            runtime,
            f"a batch answer held none of the {len(ids)} users asked for, though they answer by id"
            " (the server ignores the id filter)",
        )
    elif len(answered) == len(missing) >= max(2, len(ids) // 10):
        # every user left out answers by id: the server caps its pages below
        # what it announced (scim2-server's maxPageSize does): ask for fewer
        _shrink(runtime, len(found))
    return [
        outcome(runtime, t, found[t["user_id"]], None) if t["user_id"] in found else read_alone[t["user_id"]]
        for t in targets
    ]


def _shrink(runtime: ProviderRuntime, answered: int) -> None:
    reads = runtime.reads
    if 2 <= answered < reads.batch_size:
        log.warning("reads.batch_capped", provider=runtime.name, asked=reads.batch_size, answered=answered)
        reads.batch_size = answered


def _found(runtime: ProviderRuntime, docs: list[Any], asked: set[str]) -> dict[str, Identity] | None:
    """The answer's users by id; None (batching switched off) when it holds a
    user not asked for. A document that doesn't map is left to its by-id read."""
    found: dict[str, Identity] = {}
    foreign = 0
    for doc in docs:
        try:
            identity = runtime.connection.adapter.normalize(doc)
        except Exception as exc:  # its by-id read gives that user's error
            log.info("reads.batch_document_unmapped", provider=runtime.name, error=str(exc))
            continue
        if identity.user_id not in asked or identity.user_id in found:
            foreign += 1
        else:
            found[identity.user_id] = identity
    if foreign:
        disable_batching(
            runtime,
            f"a batch answer held {foreign} user(s) not asked for (the server ignores the id filter);"
            " the answer was dropped",
        )
        return None
    return found
