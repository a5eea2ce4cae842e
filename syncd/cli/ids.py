"""User ids given on the command line, checked before anything is changed."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from syncd import targetsfile

#: bad ids or lines named in an error, at most
MAX_BAD_SHOWN = 10


def reject_ids(command: str, ids: Sequence[str]) -> bool:
    """Print why any of these ids given on the command line can't be a user
    id; True if one can't."""
    bad = [(v, p) for v in ids if (p := targetsfile.id_problem(v))]
    for value, problem in bad[:MAX_BAD_SHOWN]:
        print(f"{command}: bad user id {targetsfile.shown(value)}: {problem}", file=sys.stderr)
    if len(bad) > MAX_BAD_SHOWN:
        print(f"{command}: … and {len(bad) - MAX_BAD_SHOWN} more bad user id(s)", file=sys.stderr)
    return bool(bad)
