"""Asking before destructive maintenance: on a terminal a question, without
one ``--yes``."""

from __future__ import annotations

import sys


def confirmed(command: str, what: str, *, yes: bool) -> bool:
    """May ``command`` do ``what`` (a phrase: "delete every …")? ``--yes`` says
    so; on a terminal the admin is asked (anything but y/yes is no); without
    one (a script, a CronJob) it is refused, saying how to allow it. Each
    refusal is one line on stderr."""
    if yes:
        return True
    if not sys.stdin.isatty():
        print(f"{command}: this would {what}; nothing done: pass --yes to do it", file=sys.stderr)
        return False
    print(f"{command}: this will {what}. Go ahead? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return True
    print(f"{command}: nothing done", file=sys.stderr)
    return False
