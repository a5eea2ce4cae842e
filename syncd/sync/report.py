"""What a pass (or its dry run) did, and its one summary line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncd.model.status import RunStatus
from syncd.sync.plan import PASS_COUNTS


@dataclass
class PassReport:
    provider: str
    trigger: str
    run_id: int | None = None
    status: str = RunStatus.OK
    error: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PASS_COUNTS, 0))
    #: how users were read (``batch``, ``by_id``) and the requests the pass sent
    read_mode: str | None = None
    requests: int = 0
    #: dry run: (user_id, change, patch)
    diffs: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)

    def add(self, counts: dict[str, int]) -> None:
        for key, n in counts.items():
            self.counts[key] += n

    def summary(self) -> str:
        c = self.counts
        return (
            f"{self.provider}: fetched {c['fetched']}, created {c['created']}, updated {c['updated']}, "
            f"deleted {c['deleted']}, restored {c['restored']}, unchanged {c['unchanged']}, "
            f"failed {c['failed']}, not found {c['not_found']}, held {c['held']}"
        )
