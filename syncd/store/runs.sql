-- syncd's SQL for runs (besides the migrations in sql/), loaded once by name.
-- Each block: "-- name: <name>" then a description line giving the order of
-- the positional parameters (the typed method in runs.py names them).

-- name: start_run
-- $1 provider, $2 trigger, $3 replica, $4 lease seconds
-- alive_until: the run is abandoned if no heartbeat moves it on (see abandon_runs)
INSERT INTO syncd.sync_runs (provider, trigger, replica, alive_until)
VALUES ($1, $2, $3, now() + make_interval(secs => 2 * $4::float8)) RETURNING id;

-- name: abandon_runs
-- $1 provider
-- Passes whose replica stopped without finishing them (killed): no heartbeat
-- for two of their own leases. Their leases have long expired; only the record
-- is fixed. Runs of an older syncd (no alive_until) are left alone.
UPDATE syncd.sync_runs SET
    status = 'abandoned',
    finished_at = heartbeat_at,
    error = 'replica stopped without finishing the pass (last heartbeat '
            || to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ')'
WHERE provider = $1 AND status = 'running' AND alive_until < now()
RETURNING id, replica, started_at, heartbeat_at;

-- name: finish_run
-- $1 run id, $2 status, $3 fetched, $4 created, $5 updated, $6 deleted, $7 restored,
-- $8 unchanged, $9 failed, $10 not_found, $11 held, $12 error, $13 read mode, $14 requests
UPDATE syncd.sync_runs SET
    finished_at = now(), status = $2, fetched = $3, created = $4, updated = $5,
    deleted = $6, restored = $7, unchanged = $8, failed = $9, not_found = $10,
    held = $11, error = $12, read_mode = $13, requests = $14
WHERE id = $1;

-- name: recent_runs
-- $1 limit
SELECT id, provider, trigger, replica, started_at, finished_at, status, fetched, created,
       updated, deleted, restored, unchanged, failed, not_found, held, error, read_mode, requests
FROM syncd.sync_runs ORDER BY id DESC LIMIT $1;

-- name: prune_runs
-- $1 older than seconds
DELETE FROM syncd.sync_runs WHERE finished_at < now() - make_interval(secs => $1);
