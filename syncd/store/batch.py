"""What one write statement carries: a batch's events and its targets' bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson


@dataclass(slots=True)
class ChangeSet:
    """The events of a batch, for the ``write_batch`` statement.

    A batch goes to PostgreSQL as ONE jsonb document (a list of rows), encoded
    by a single orjson call, rather than as a dozen arrays: asyncpg inspects
    every element of an array parameter in Python, which cost more than
    everything else syncd does for a created user but fetch and parse it."""

    user_ids: list[str]
    event_ids: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    #: about how many bytes of JSON each row's payload is (to split a batch)
    sizes: list[int]
    #: mirror rows rewritten with no event (only ignored or representation
    #: fields changed): ``(user_id, record, content_hash, the hash it
    #: replaces)``, the record as canonical JSON (an orjson Fragment)
    refreshes: list[tuple[str, orjson.Fragment, str, str]] = field(default_factory=list)
    refresh_sizes: list[int] = field(default_factory=list)

    @classmethod
    def empty(cls) -> ChangeSet:
        return cls([], [], [], [], [])

    def refresh(self, user_id: str, record: bytes, content_hash: str, replaces: str) -> None:
        """Rewrite ``user_id``'s mirror row with ``record``, quietly, if it
        still has the hash ``replaces`` (a writer that raced it wrote newer)."""
        self.refreshes.append((user_id, orjson.Fragment(record), content_hash, replaces))
        self.refresh_sizes.append(len(record))

    def add(
        self,
        user_id: str,
        event_id: str,
        type_: str,
        payload: dict[str, Any],
        content_hash: str | None,
        *,
        size: int = 0,
    ) -> None:
        self.user_ids.append(user_id)
        self.event_ids.append(event_id)
        self.types.append(type_)
        self.rows.append((user_id, event_id, type_, payload, content_hash))
        self.sizes.append(size)

    def __len__(self) -> int:
        """The number of events (quiet refreshes are none)."""
        return len(self.user_ids)

    def param(self) -> bytes:
        """``[[user_id, event_id, type, payload, content_hash], …]`` as JSON."""
        return orjson.dumps(self.rows)

    def refresh_param(self) -> bytes:
        """``[[user_id, record, content_hash, replaced hash], …]`` as JSON."""
        return orjson.dumps(self.refreshes)

    def subset(self, user_ids: Sequence[str]) -> ChangeSet:
        """The events of these users only."""
        keep = set(user_ids)
        out = ChangeSet.empty()
        for i, uid in enumerate(self.user_ids):
            if uid in keep:
                out.user_ids.append(uid)
                out.event_ids.append(self.event_ids[i])
                out.types.append(self.types[i])
                out.rows.append(self.rows[i])
                out.sizes.append(self.sizes[i])
        for row, size in zip(self.refreshes, self.refresh_sizes, strict=True):
            if row[0] in keep:
                out.refreshes.append(row)
                out.refresh_sizes.append(size)
        return out

    def split(self, updates: TargetUpdates, budget: int) -> list[tuple[ChangeSet, TargetUpdates]]:
        """The batch as writes of at most ``budget`` bytes of events each (one
        user's events and target row always in the same write, so each write
        is atomic for its users). Nearly always one part: the batch itself."""
        if sum(self.sizes) + sum(self.refresh_sizes) <= budget:
            return [(self, updates)]
        size = dict(zip(self.user_ids, self.sizes, strict=True))
        size.update((row[0], n) for row, n in zip(self.refreshes, self.refresh_sizes, strict=True))
        users = list(dict.fromkeys([*self.user_ids, *updates.user_ids()]))
        parts: list[list[str]] = [[]]
        used = 0
        for uid in users:
            n = size.get(uid, 0)
            if parts[-1] and used + n > budget:
                parts.append([])
                used = 0
            parts[-1].append(uid)
            used += n
        return [(self.subset(p), updates.subset(p)) for p in parts]


@dataclass(slots=True)
class TargetUpdates:
    """The bookkeeping of a batch (one row per leased target), for the
    ``write_batch`` statement; sent as one jsonb document like ``ChangeSet``."""

    statuses: list[str]
    rows: list[tuple[Any, ...]]

    @classmethod
    def empty(cls) -> TargetUpdates:
        return cls([], [])

    def add(
        self,
        user_id: str,
        status: str,
        *,
        next_in: float,
        error: str | None = None,
        not_found_count: int = 0,
        not_found_since: datetime | None = None,
        failed: bool = False,
        body_hash: str | None = None,
        etag: tuple[str, str] | None = None,
    ) -> None:
        """``etag``: the ETag to send with the next read and the scope it was
        kept under (None: none, the next read is a plain GET)."""
        self.statuses.append(status)
        tag, scope = etag if etag is not None else (None, None)
        self.rows.append(
            (user_id, status, error, next_in, not_found_count, not_found_since, failed, body_hash, tag, scope)
        )

    def __len__(self) -> int:
        return len(self.rows)

    def param(self) -> bytes:
        """``[[user_id, status, error, next_in, not_found_count, not_found_since,
        failed, body_hash, etag, etag_scope], …]``."""
        return orjson.dumps(self.rows)

    def user_ids(self) -> list[str]:
        return [r[0] for r in self.rows]

    def subset(self, user_ids: Sequence[str]) -> TargetUpdates:
        """The rows of these users only."""
        keep = set(user_ids)
        out = TargetUpdates.empty()
        for status, row in zip(self.statuses, self.rows, strict=True):
            if row[0] in keep:
                out.statuses.append(status)
                out.rows.append(row)
        return out
