"""An embedded PostgreSQL (the ``pgserver`` package) for a setup-free start.

Used by ``syncd demo``, by a config file that names no database URL (or says
``[database] embedded = true``) and by the tests on a machine without
PostgreSQL; each command that uses it says so on stderr (``announce``). The data lives under the state directory
and survives restarts.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import structlog

from syncd.errors import ConfigError

log = structlog.get_logger("syncd.embedded")


def announce(state_dir: str | os.PathLike[str], why: str) -> None:
    """One line on stderr: this command works on the embedded server, there.
    Without it, a config that forgot its URL would look like it worked."""
    data = Path(state_dir).resolve() / "pg"
    print(f"syncd: using the embedded PostgreSQL in {data} ({why})", file=sys.stderr, flush=True)


def start(state_dir: str | os.PathLike[str]) -> Any:
    """Start (or attach to) the embedded server under ``state_dir/pg``; returns the handle."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path(state_dir).resolve() / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:
        raise ConfigError(
            "no database configured ([database] url or $SYNCD_DATABASE_URL) and the embedded "
            "PostgreSQL is not installed: pip install 'syncd[embedded]'"
        ) from exc
    data = Path(state_dir).resolve() / "pg"
    data.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data, cleanup_mode="stop")
    log.info("embedded.started", data_dir=str(data))
    return server


def url(server: Any, database: str = "postgres") -> str:
    return str(server.get_uri(database))
