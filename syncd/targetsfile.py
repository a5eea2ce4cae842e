"""Targets files (``syncd targets add|remove --file F``) and user ids given by
hand: which ids are good, and which lines are bad and why. Pure: no I/O.

A file is one user id per line, read as bytes and decoded line by line (one
bad line never hides the others). Whitespace around an id is stripped; blank
lines and lines whose first non-space character is ``#`` are skipped.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

#: the longest user id accepted (characters); provider ids are far shorter
MAX_ID_CHARS = 1024
#: Unicode categories that are never part of a user id: control characters
#: (C0, DEL, C1), line and paragraph separators, surrogates (how Python
#: decodes bytes that are not UTF-8 in command-line arguments)
_BAD_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class ParsedTargets:
    #: good ids, in file order (duplicates kept)
    ids: list[str] = field(default_factory=list)
    #: (1-based line number, reason) of each bad line
    bad: list[tuple[int, str]] = field(default_factory=list)


def id_problem(value: str) -> str | None:
    """Why ``value`` can't be a user id, or None if it can."""
    if not value:
        return "empty"
    if len(value) > MAX_ID_CHARS:
        return f"longer than {MAX_ID_CHARS} characters ({len(value)})"
    for ch in value:
        if ch == "\x00":
            return "contains a NUL byte"
        category = unicodedata.category(ch)
        if category == "Cs":
            return "not valid UTF-8"
        if category in _BAD_CATEGORIES:
            return f"contains control character U+{ord(ch):04X}"
    if value != value.strip():
        return "has leading or trailing whitespace"
    return None


def parse(data: bytes) -> ParsedTargets:
    """The ids of a targets file and its bad lines."""
    result = ParsedTargets()
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.bad.append(
                (number, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
            )
            continue
        value = line.strip()
        if not value or value.startswith("#"):
            continue
        problem = id_problem(value)
        if problem:
            result.bad.append((number, problem))
        else:
            result.ids.append(value)
    return result


def shown(value: str, limit: int = 60) -> str:
    """``repr(value)``, shortened: for error messages naming a bad id."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
