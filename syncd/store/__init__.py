"""The store: the only code that talks to PostgreSQL.

One module per table family, each a set of typed methods over the named
queries of its ``.sql`` file; ``Store`` is all of them over one pool.
"""

from __future__ import annotations

from syncd.store.batch import ChangeSet, TargetUpdates
from syncd.store.database import CONNECTION_ERRORS, queries
from syncd.store.deletions import Deletions, MirrorCounts
from syncd.store.discovery import Applied, Discovery, DiscoveryHolder
from syncd.store.export import Export, ExportPosition
from syncd.store.feed import Feeds
from syncd.store.listener import Listener
from syncd.store.migrator import Migration, Migrations, migrations, migrations_dir
from syncd.store.mirror import Mirror
from syncd.store.outbox import Outbox
from syncd.store.provider_state import PAUSE_CLEARED, PauseState, ProviderState
from syncd.store.refresh_tokens import RefreshTokens, RefreshTokenSlot
from syncd.store.runs import RUN_COUNTS, Runs
from syncd.store.server import recreate_database
from syncd.store.status import Status
from syncd.store.targets import LeasedElsewhere, Targets


class Store(
    Migrations,
    Targets,
    Mirror,
    Runs,
    Deletions,
    Discovery,
    Feeds,
    Outbox,
    Export,
    ProviderState,
    RefreshTokens,
    Status,
    Listener,
):
    """Every table family's queries over one connection pool."""


__all__ = [
    "CONNECTION_ERRORS",
    "PAUSE_CLEARED",
    "RUN_COUNTS",
    "Applied",
    "ChangeSet",
    "DiscoveryHolder",
    "ExportPosition",
    "LeasedElsewhere",
    "Migration",
    "MirrorCounts",
    "PauseState",
    "RefreshTokenSlot",
    "Store",
    "TargetUpdates",
    "migrations",
    "migrations_dir",
    "queries",
    "recreate_database",
]
