-- A pass's row in sync_runs said 'running' forever when its replica was
-- killed (kill -9, OOM, node loss). A running pass now stamps heartbeat_at
-- every third of the lease (with its lease renewal); the next pass of the
-- provider, on any replica, marks runs whose heartbeat is older than two
-- leases as 'abandoned'.
ALTER TABLE syncd.sync_runs ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX sync_runs_running_idx ON syncd.sync_runs (provider) WHERE status = 'running';
