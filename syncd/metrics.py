"""Prometheus metrics (prometheus-client), served by ``syncd run`` on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from syncd import __version__
from syncd.model.status import TargetStatus

#: the outcomes ``syncd_users_total`` counts: what a pass left each user at.
#: ``deleting`` is not one: a confirmed deletion is then deleted, held or
#: rejected by the mass-deletion guard, and counted as that
USER_OUTCOMES = tuple(s.value for s in TargetStatus if s is not TargetStatus.DELETING)

USERS = Counter(
    "syncd_users_total",
    f"Users a sync pass processed, by provider and outcome ({', '.join(USER_OUTCOMES)})",
    ["provider", "outcome"],
)


def count_users(provider: str, outcome: str, n: int = 1) -> None:
    """Count ``n`` users of a pass under ``outcome`` (one of ``USER_OUTCOMES``)."""
    if outcome not in USER_OUTCOMES:
        raise ValueError(f"not an outcome of syncd_users_total: {outcome!r}")
    if n:
        USERS.labels(provider, outcome).inc(n)


BUILD = Info("syncd_build", "The syncd version serving these metrics")
BUILD.info({"version": __version__})
FETCH_SECONDS = Histogram(
    "syncd_fetch_duration_seconds",
    "Latency of one HTTP request to a provider",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENTS = Counter("syncd_events_total", "Outbox events written", ["provider", "type"])
RATE_LIMITED = Counter(
    "syncd_rate_limited_total", "Responses that asked us to slow down (429/503/423)", ["provider"]
)
RATE_LIMIT_WAIT = Counter(
    "syncd_rate_limit_wait_seconds_total", "Time the provider was paused by Retry-After", ["provider"]
)
CIRCUIT_OPEN = Gauge("syncd_circuit_open", "1 while the provider's circuit breaker is open", ["provider"])
TARGETS_DUE = Gauge("syncd_targets_due", "Targets due for sync now", ["provider"])
LAST_SUCCESS = Gauge(
    "syncd_last_success_timestamp_seconds", "When a sync pass of the provider last finished", ["provider"]
)
PENDING_DELETIONS = Gauge(
    "syncd_pending_deletions", "Deletions held by the mass-deletion guard", ["provider"]
)
DB_UP = Gauge("syncd_database_up", "1 while PostgreSQL answers")
DISCOVERED = Gauge("syncd_discovered_users", "Users the provider's last complete listing named", ["provider"])
DISCOVERY_LAST_SUCCESS = Gauge(
    "syncd_discovery_last_success_timestamp_seconds",
    "When a complete listing of the provider was last applied",
    ["provider"],
)
DISCOVERIES = Counter("syncd_discoveries_total", "Listings by verdict", ["provider", "verdict"])
REQUESTS = Counter(
    "syncd_requests_total",
    "Requests sent to providers, by kind (get, batch, list, check, search, token); each attempt counts",
    ["provider", "kind"],
)
BATCH_READS = Gauge(
    "syncd_batch_reads",
    "1 while the provider's users are read in batches, 0 when read one by one",
    ["provider"],
)
QUIET_REWRITES = Counter(
    "syncd_quiet_rewrites_total",
    "Mirror rows rewritten with no event: only ignore_fields or representation fields"
    " (meta.location, change markers) differed",
    ["provider"],
)
PAGE_REFRESHED = Counter(
    "syncd_page_refreshed_users_total",
    "Targets refreshed from a discovery listing's pages (no request of their own)",
    ["provider"],
)
OUTBOX_UNPROCESSED = Gauge(
    "syncd_outbox_unprocessed",
    "Outbox events from the oldest one not marked processed to the newest (claim consumers;"
    " a stream consumer such as Debezium marks none)",
)
OUTBOX_OLDEST_AGE = Gauge(
    "syncd_outbox_oldest_unprocessed_age_seconds",
    "Age of the oldest outbox event not marked processed (0 when none is)",
)
PROVIDER_INTERVAL = Gauge(
    "syncd_provider_interval_seconds", "The provider's configured refresh interval", ["provider"]
)
CREDENTIALS_REJECTED = Gauge(
    "syncd_credentials_rejected",
    "1 while the provider refuses syncd's credentials (the last pass stopped on it)",
    ["provider"],
)
