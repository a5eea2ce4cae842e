"""An embedded PostgreSQL (the ``pgserver`` package) for a setup-free start.

Used when no database URL is configured: ``syncd demo``, a laptop, the tests
on a machine without PostgreSQL. The data lives under the state directory
and survives restarts.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import structlog

from syncd.errors import ConfigError

log = structlog.get_logger("syncd.embedded")


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
