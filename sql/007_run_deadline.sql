-- A run is abandoned when it misses a deadline it set itself, not the
-- observing replica's own lease: with heartbeat_at alone, a replica with a
-- short `sync.lease` marked a long-lease replica's live run abandoned, and so
-- did every new replica for runs of an older syncd that stamps no heartbeat
-- (a rolling upgrade). A run sets alive_until = now + two leases when it
-- starts and at every heartbeat; a run without one (an older syncd's) is
-- never marked.
ALTER TABLE syncd.sync_runs ADD COLUMN alive_until timestamptz;
