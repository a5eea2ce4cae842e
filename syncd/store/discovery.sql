-- syncd's SQL for discovery (the syncd.discovery table and the targets a
-- listing enrols), loaded once by name. Each block: "-- name: <name>" then a
-- description line giving the order of the positional parameters (the typed
-- method in discovery.py names them).

-- name: lease_discovery
-- $1 provider, $2 lease owner, $3 lease seconds, $4 only when due (false: now, for the CLI)
-- Take the provider's discovery lease when it is free (or ours, or expired)
-- and, for the daemon's schedule, the listing is due. No row: not leased.
INSERT INTO syncd.discovery AS d (provider, leased_by, lease_expires_at, started_at)
VALUES ($1, $2, now() + make_interval(secs => $3), now())
ON CONFLICT (provider) DO UPDATE
SET leased_by = $2, lease_expires_at = now() + make_interval(secs => $3), started_at = now()
WHERE (d.leased_by IS NULL OR d.leased_by = $2 OR d.lease_expires_at < now())
  AND (NOT $4 OR d.next_at <= now())
RETURNING d.provider;

-- name: discovery_holder
-- $1 provider
-- Who holds the provider's discovery lease, and until when (NULL: nobody).
SELECT leased_by, lease_expires_at, next_at
FROM syncd.discovery
WHERE provider = $1 AND leased_by IS NOT NULL AND lease_expires_at >= now();

-- name: renew_discovery_lease
-- $1 provider, $2 lease owner, $3 lease seconds
UPDATE syncd.discovery
SET lease_expires_at = now() + make_interval(secs => $3)
WHERE provider = $1 AND leased_by = $2;

-- name: target_sources
-- $1 provider
-- Every target of the provider and who made it one (explicit, discovered).
SELECT user_id, source FROM syncd.targets WHERE provider = $1;

-- name: apply_discovery
-- $1 provider, $2 lease owner, $3 new user ids, $4 missing user ids, $5 listed, $6 unchanged, $7 seconds until the next listing
-- One complete listing's changes, in one statement and only while the lease is
-- ours: enrol the new users (due now) and make the missing ones due (the
-- by-id read decides about them); nothing is removed. No row: the lease was lost.
WITH lease AS (
    SELECT provider FROM syncd.discovery WHERE provider = $1 AND leased_by = $2 FOR UPDATE
), enrolled AS (
    INSERT INTO syncd.targets (provider, user_id, source)
    SELECT lease.provider, u, 'discovered' FROM lease, unnest($3::text[]) AS u
    ON CONFLICT (provider, user_id) DO NOTHING
    RETURNING 1
), due AS (
    UPDATE syncd.targets t SET next_sync_at = now()
    FROM lease
    WHERE t.provider = lease.provider AND t.user_id = ANY($4::text[]) AND t.next_sync_at > now()
    RETURNING 1
)
UPDATE syncd.discovery d
SET leased_by = NULL, lease_expires_at = NULL, finished_at = now(), last_success_at = now(),
    verdict = 'complete', reason = NULL, listed = $5, enrolled = (SELECT count(*) FROM enrolled),
    missing = cardinality($4::text[]), unchanged = $6, next_at = now() + make_interval(secs => $7)
FROM lease
WHERE d.provider = lease.provider
RETURNING d.enrolled, (SELECT count(*) FROM due) AS made_due;

-- name: fail_discovery
-- $1 provider, $2 lease owner, $3 verdict, $4 reason, $5 listed so far, $6 seconds until the next listing
-- A listing that changed nothing (incomplete, failed, refused as empty):
-- recorded, the lease released.
UPDATE syncd.discovery
SET leased_by = NULL, lease_expires_at = NULL, finished_at = now(), verdict = $3, reason = $4,
    listed = $5, enrolled = 0, missing = NULL, unchanged = NULL,
    next_at = now() + make_interval(secs => $6)
WHERE provider = $1 AND leased_by = $2;

-- name: discovery_status
-- (no parameters)
-- The last listing of every provider, for `syncd status` and the metrics.
SELECT provider, started_at, finished_at, last_success_at, verdict, reason, listed, enrolled, missing,
       unchanged, next_at, leased_by, lease_expires_at
FROM syncd.discovery
ORDER BY provider;

-- name: make_discovery_due
-- $1 provider (NULL = every provider)
-- Ask for the next listing now (the daemon looks every 30 s).
UPDATE syncd.discovery SET next_at = now() WHERE $1::text IS NULL OR provider = $1;
