"""How the commands print: aligned tables and timestamps."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC
from typing import Any


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out: Any = None) -> None:
    """Columns as wide as their widest cell, two spaces apart; None prints as nothing."""
    out = out or sys.stdout
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=out)


def fmt_time(value: Any) -> str:
    """A timestamp as it is stored (its own zone), to the second; ``-`` for none."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def fmt_utc(value: Any) -> str:
    """A timestamp in UTC, saying so; ``-`` for none."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def fmt_duration(seconds: float) -> str:
    """Seconds in the largest unit that holds them whole: ``7d``, ``36h``, ``90s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
