"""``syncd run``: placeholder until the daemon lands (issue 3)."""

from __future__ import annotations

import sys

from syncd.config import Config


async def run_daemon(cfg: Config, listen: str | None = None) -> int:
    print("syncd run: the daemon is not implemented yet; use `syncd resync`", file=sys.stderr)
    return 2
