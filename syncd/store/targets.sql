-- syncd's SQL for targets (besides the migrations in sql/), loaded once by name.
-- Each block: "-- name: <name>" then a description line giving the order of
-- the positional parameters (the typed method in targets.py names them).

-- name: lease_due
-- $1 provider, $2 lease owner, $3 lease seconds, $4 batch size, $5 only these user ids (NULL = any)
-- Lease due targets (SKIP LOCKED: replicas share the work) and return what
-- the engine needs to diff them without another round trip (the mirror row's
-- updated_at: a batch answer from a lagging listing must not take a user back).
WITH due AS (
    SELECT t.user_id
    FROM syncd.targets t
    WHERE t.provider = $1
      AND t.next_sync_at <= now()
      AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now())
      AND ($5::text[] IS NULL OR t.user_id = ANY($5::text[]))
    ORDER BY t.next_sync_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE syncd.targets t
    SET leased_by = $2, lease_expires_at = now() + make_interval(secs => $3)
    -- by key through the primary key (an array, not a join: joined back,
    -- PostgreSQL hashed the whole table for every batch). Not by ctid: a row
    -- updated and committed after this statement's snapshot (make_due, a peer's
    -- release) is locked at its new version, which a ctid lookup under the
    -- snapshot can't see; a key lookup re-checks the new version and leases it.
    WHERE t.provider = $1 AND t.user_id = ANY (ARRAY(SELECT user_id FROM due))
    RETURNING t.user_id, t.not_found_count, t.not_found_since, t.attempts, t.body_hash, t.last_synced_at,
              t.added_at, t.last_status, t.etag, t.etag_scope
)
SELECT l.user_id, l.not_found_count, l.not_found_since, l.attempts, l.body_hash, l.last_synced_at, l.added_at,
       l.last_status, l.etag, l.etag_scope, u.content_hash, u.changed_at, u.deleted_at, u.updated_at AS mirror_updated_at
FROM leased l
LEFT JOIN syncd.users u ON u.provider = $1 AND u.user_id = l.user_id;

-- name: peek_targets
-- $1 provider, $2 only these user ids (NULL = all), $3 limit, $4 after this user id
-- Targets with their mirror hash, without leasing: for --dry-run, with the
-- columns lease_due returns (the dry run plans them as a pass would). Given
-- ids need not be targets yet (a dry run adds none).
WITH ids AS (
    SELECT t.user_id, t.not_found_count, t.not_found_since, t.attempts, t.body_hash,
           t.last_synced_at, t.added_at, t.last_status, t.etag, t.etag_scope
    FROM syncd.targets t
    WHERE t.provider = $1 AND $2::text[] IS NULL AND t.user_id > $4
    UNION ALL
    SELECT i.id, coalesce(t.not_found_count, 0), t.not_found_since, coalesce(t.attempts, 0), t.body_hash,
           t.last_synced_at, t.added_at, t.last_status, t.etag, t.etag_scope
    FROM unnest($2::text[]) AS i(id)
    LEFT JOIN syncd.targets t ON t.provider = $1 AND t.user_id = i.id
    -- byte order, as the ORDER BY below sorts (the result takes user_id's "C"):
    -- under the database's collation, pages would skip or repeat ids
    WHERE i.id COLLATE "C" > $4
)
SELECT i.user_id, i.not_found_count, i.not_found_since, i.attempts, i.body_hash,
       i.last_synced_at, i.added_at, i.last_status, i.etag, i.etag_scope,
       u.content_hash, u.changed_at, u.deleted_at, u.updated_at AS mirror_updated_at
FROM ids i
LEFT JOIN syncd.users u ON u.provider = $1 AND u.user_id = i.user_id
ORDER BY i.user_id
LIMIT $3;

-- name: release_leases
-- $1 lease owner, $2 provider (NULL = every provider)
-- Give leased targets back without syncing them (end of a pass, shutdown).
UPDATE syncd.targets SET leased_by = NULL, lease_expires_at = NULL
WHERE leased_by = $1 AND ($2::text IS NULL OR provider = $2);

-- name: add_targets
-- $1 provider, $2 user ids
-- Add targets (due now); existing ones are left as they are, except that one
-- a listing enrolled becomes explicit (a filtered listing then leaves it alone).
INSERT INTO syncd.targets (provider, user_id)
SELECT DISTINCT $1, u FROM unnest($2::text[]) AS u
ON CONFLICT (provider, user_id) DO UPDATE SET source = 'explicit'
WHERE syncd.targets.source <> 'explicit';

-- name: remove_targets
-- $1 provider, $2 user ids
DELETE FROM syncd.targets WHERE provider = $1 AND user_id = ANY($2::text[]);

-- name: make_due
-- $1 provider, $2 user ids (NULL = every target of the provider)
-- Ask for a sync now (resync, --enqueue).
UPDATE syncd.targets SET next_sync_at = now()
WHERE provider = $1 AND ($2::text[] IS NULL OR user_id = ANY($2::text[]));

-- name: list_targets
-- $1 provider (NULL = all), $2 limit
SELECT provider, user_id, next_sync_at, last_synced_at, last_status, last_error,
       attempts, leased_by
FROM syncd.targets
WHERE ($1::text IS NULL OR provider = $1)
ORDER BY provider, user_id
LIMIT $2;

-- name: set_target_status
-- $1 provider, $2 user ids, $3 status, $4 error, $5 seconds until the next sync
-- (±10 %; NULL = as scheduled)
UPDATE syncd.targets SET last_status = $3, last_error = $4,
    next_sync_at = CASE WHEN $5::float8 IS NULL THEN next_sync_at
                        ELSE now() + make_interval(secs => $5::float8 * (0.9 + 0.2 * random())) END
WHERE provider = $1 AND user_id = ANY($2::text[]);

-- name: peek_due
-- $1 provider
-- Is anything due (and not leased)? Cheap check before starting a pass.
SELECT 1 FROM syncd.targets
WHERE provider = $1 AND next_sync_at <= now()
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
LIMIT 1;

-- name: notify_resync
-- $1 provider
-- `resync --enqueue`: wake the running daemons' job for this provider.
SELECT pg_notify('syncd_resync', $1);

-- name: count_targets
-- $1 provider
SELECT count(*) AS n FROM syncd.targets WHERE provider = $1;

-- name: count_listed_targets
-- $1 provider (NULL = all)
-- What list_targets would show without its limit.
SELECT count(*) AS n FROM syncd.targets WHERE ($1::text IS NULL OR provider = $1);

-- name: target_statuses
-- $1 provider, $2 user ids
-- Those of the ids that are targets, with what their last sync found.
SELECT user_id, last_status, last_error FROM syncd.targets
WHERE provider = $1 AND user_id = ANY($2::text[]);

-- name: renew_leases
-- $1 lease owner, $2 provider, $3 lease seconds, $4 run id
-- Keep our leases while a pass is still working on them (e.g. waiting out a
-- long Retry-After), so another replica doesn't take them over meanwhile,
-- and show the pass is alive (sync_runs.heartbeat_at, alive_until).
-- SKIP LOCKED: a row the pass's own write_batch is releasing right now is
-- left to it. Waiting for it instead could deadlock with that write (both
-- lock a batch's rows, in different orders), and the loser would fail.
WITH alive AS (
    UPDATE syncd.sync_runs SET heartbeat_at = now(), alive_until = now() + make_interval(secs => 2 * $3::float8)
    WHERE id = $4 AND status = 'running'
), mine AS (
    SELECT user_id FROM syncd.targets
    WHERE leased_by = $1 AND provider = $2 AND lease_expires_at > now()
    FOR UPDATE SKIP LOCKED
)
UPDATE syncd.targets t SET lease_expires_at = now() + make_interval(secs => $3)
WHERE t.provider = $2 AND t.user_id = ANY (ARRAY(SELECT user_id FROM mine)) AND t.leased_by = $1;

-- name: leased_elsewhere
-- $1 provider, $2 lease owner (ours), $3 only these user ids (NULL = every target of the provider)
-- Targets whose lease someone else holds and has not expired (lease_due
-- skips them): how many, when the last of those leases ends (and how many
-- seconds that is from now, by the database's clock), and by whom.
SELECT count(*) AS n, max(lease_expires_at) AS until,
       coalesce(extract(epoch FROM max(lease_expires_at) - now()), 0)::float8 AS seconds_left,
       coalesce(array_agg(DISTINCT leased_by ORDER BY leased_by)
                FILTER (WHERE leased_by IS NOT NULL), '{}') AS owners
FROM syncd.targets
WHERE provider = $1
  AND lease_expires_at >= now()
  AND leased_by IS DISTINCT FROM $2
  AND ($3::text[] IS NULL OR user_id = ANY($3::text[]));

-- name: lease_ids
-- $1 provider, $2 lease owner, $3 lease seconds, $4 user ids
-- Lease these targets unless a pass holds them (`deletions approve|reject`
-- must not race a pass over the same users); returns the ones leased.
UPDATE syncd.targets SET leased_by = $2, lease_expires_at = now() + make_interval(secs => $3::float8)
WHERE provider = $1 AND user_id = ANY($4::text[])
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
RETURNING user_id;

-- name: lease_listed
-- $1 provider, $2 lease owner, $3 lease seconds, $4 the user ids a listing page named
-- Lease the page's users that are targets and that no pass holds, due or
-- not: the page's documents refresh them (syncd.sync.page_refresh). The
-- columns of lease_due, and the mirror row's updated_at (a listing served
-- from a lagging projection must not take a user back to an older state).
WITH listed AS (
    SELECT t.user_id
    FROM syncd.targets t
    WHERE t.provider = $1 AND t.user_id = ANY($4::text[])
      AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now())
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE syncd.targets t
    SET leased_by = $2, lease_expires_at = now() + make_interval(secs => $3::float8)
    WHERE t.provider = $1 AND t.user_id = ANY (ARRAY(SELECT user_id FROM listed))
    RETURNING t.user_id, t.not_found_count, t.not_found_since, t.attempts, t.body_hash, t.last_synced_at,
              t.added_at, t.last_status, t.etag, t.etag_scope
)
SELECT l.user_id, l.not_found_count, l.not_found_since, l.attempts, l.body_hash, l.last_synced_at, l.added_at,
       l.last_status, l.etag, l.etag_scope, u.content_hash, u.changed_at, u.deleted_at,
       u.updated_at AS mirror_updated_at
FROM leased l
LEFT JOIN syncd.users u ON u.provider = $1 AND u.user_id = l.user_id;

-- name: release_ids
-- $1 provider, $2 lease owner, $3 user ids
-- Give back these leases of ours without syncing the users (a page refresh
-- that left them to their scheduled read).
UPDATE syncd.targets SET leased_by = NULL, lease_expires_at = NULL
WHERE provider = $1 AND leased_by = $2 AND user_id = ANY($3::text[]);

-- name: cap_schedules
-- $1 provider, $2 interval (seconds), $3 deleted_recheck (seconds)
-- Bring in targets scheduled later than the configured cadence allows (the
-- interval was lowered, or deleted_recheck): each is due again within that
-- cadence, spread over it so a lowered interval starts no thundering herd.
-- A deleted user's cadence is deleted_recheck; anyone else's, the interval.
-- The first condition keeps it an index range scan of the far future.
WITH late AS (
    SELECT t.user_id,
           CASE WHEN u.deleted_at IS NOT NULL THEN $3::float8 ELSE $2::float8 END AS cadence
    FROM syncd.targets t
    LEFT JOIN syncd.users u ON u.provider = t.provider AND u.user_id = t.user_id
    WHERE t.provider = $1
      AND t.next_sync_at > now() + make_interval(secs => 1.1 * least($2::float8, $3::float8))
      AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now())
)
UPDATE syncd.targets t SET next_sync_at = now() + make_interval(secs => l.cadence * random())
FROM late l
WHERE t.provider = $1 AND t.user_id = l.user_id
  AND t.next_sync_at > now() + make_interval(secs => 1.1 * l.cadence);

-- name: forget_deleted
-- $1 provider, $2 seconds
-- Stop syncing users deleted longer ago than this: their targets go (the
-- mirror row stays, deleted; a listing that names them again enrols them).
DELETE FROM syncd.targets t
USING syncd.users u
WHERE t.provider = $1 AND u.provider = $1 AND u.user_id = t.user_id
  AND u.deleted_at < now() - make_interval(secs => $2::float8)
  AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now())
RETURNING t.user_id;
