"""The words syncd writes to ``targets.last_status``, ``sync_runs.status`` and
``outbox.type``. They are contracts (downstream readers and `syncd status`
show them), so they are spelled once, here; each is a ``str`` so it goes to
SQL and JSON as the word itself."""

from __future__ import annotations

from enum import StrEnum


class TargetStatus(StrEnum):
    """``syncd.targets.last_status``: what the last sync of a user found."""

    CREATED = "created"
    UPDATED = "updated"
    RESTORED = "restored"
    UNCHANGED = "unchanged"
    #: a 404 not yet confirmed (``delete_confirmations``)
    NOT_FOUND_UNCONFIRMED = "not_found_unconfirmed"
    #: confirmed gone; the pass's deletion guard decides (its lease is kept)
    DELETING = "deleting"
    DELETED = "deleted"
    #: a 404 for a user never mirrored, or already deleted
    NOT_FOUND = "not_found"
    DELETION_HELD = "deletion_held"
    DELETION_REJECTED = "deletion_rejected"
    ERROR = "error"
    #: its document could not be stored (too large, too deep, refused)
    REFUSED = "refused"
    QUARANTINED = "quarantined"


class RunStatus(StrEnum):
    """``syncd.sync_runs.status``."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    ABORTED = "aborted"
    ABANDONED = "abandoned"


class EventType(StrEnum):
    """``syncd.outbox.type``."""

    CREATED = "user.created"
    UPDATED = "user.updated"
    DELETED = "user.deleted"
    RESTORED = "user.restored"

    @classmethod
    def of(cls, change: str) -> EventType:
        """``user.created`` of the change ``created``."""
        return cls(f"user.{change}")

    @property
    def change(self) -> str:
        """``created`` of ``user.created``: the pass count it goes under."""
        return self.value.removeprefix("user.")


class TargetSource(StrEnum):
    """``syncd.targets.source``: who made a user a target."""

    #: an admin (`targets add`, a targets file) or the config's ``user_ids``
    EXPLICIT = "explicit"
    #: a complete listing of the provider (``discover``)
    DISCOVERED = "discovered"
