"""What a complete listing changes among a provider's targets, with no I/O.

Discovery only ever adds targets and makes targets due. A target missing
from the listing is not removed and its user is not deleted: it is read by
id at once, and that read (404 confirmations, the mass-deletion guard)
decides. Targets an admin added by hand are expected to be missing from a
filtered listing (``discover_filter`` scopes what is listed, not what is
synced), so they are not made due for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from syncd.model.status import TargetSource


@dataclass(frozen=True, slots=True)
class Reconciliation:
    #: listed, not a target yet: enrolled, due now
    new: list[str]
    #: targets the listing did not name: due now, for the by-id read to decide
    missing: list[str]
    #: listed and already targets
    unchanged: int


def reconcile(listed: Sequence[str], targets: Mapping[str, str], *, scoped: bool) -> Reconciliation:
    """``targets`` maps each of the provider's targets to its ``TargetSource``;
    ``scoped`` says the listing was filtered (``discover_filter``)."""
    listed_set = set(listed)
    new = [user_id for user_id in listed if user_id not in targets]
    missing = [
        user_id
        for user_id, source in targets.items()
        if user_id not in listed_set and not (scoped and source == TargetSource.EXPLICIT)
    ]
    return Reconciliation(new=new, missing=sorted(missing), unchanged=len(listed) - len(new))
