-- syncd's SQL for status (besides the migrations in sql/), loaded once by name.
-- Each block: "-- name: <name>" then a description line giving the order of
-- the positional parameters (the typed method in status.py names them).

-- name: provider_status
-- $1 configured provider names
-- Per provider: targets, due, failing, leased, mirrored, deleted, pending deletions.
SELECT p.provider,
       (SELECT count(*) FROM syncd.targets t WHERE t.provider = p.provider) AS targets,
       (SELECT count(*) FROM syncd.targets t WHERE t.provider = p.provider AND t.next_sync_at <= now()) AS due,
       (SELECT count(*) FROM syncd.targets t WHERE t.provider = p.provider AND t.last_error IS NOT NULL) AS errors,
       (SELECT count(*) FROM syncd.targets t WHERE t.provider = p.provider AND t.lease_expires_at > now()) AS leased,
       (SELECT count(*) FROM syncd.targets t
        WHERE t.provider = p.provider AND t.last_status = 'quarantined') AS quarantined,
       (SELECT count(*) FROM syncd.users u WHERE u.provider = p.provider AND u.deleted_at IS NULL) AS mirrored,
       (SELECT count(*) FROM syncd.users u WHERE u.provider = p.provider AND u.deleted_at IS NOT NULL) AS deleted,
       (SELECT count(*) FROM syncd.pending_deletions d
        WHERE d.provider = p.provider AND d.rejected_at IS NULL) AS pending_deletions,
       (SELECT max(finished_at) FROM syncd.sync_runs r WHERE r.provider = p.provider AND r.status = 'ok') AS last_sync,
       s.paused_until, s.pause_reason, s.circuit
FROM (SELECT DISTINCT provider FROM syncd.targets
      UNION SELECT DISTINCT provider FROM syncd.users
      UNION SELECT unnest($1::text[])) AS p
LEFT JOIN syncd.provider_state s ON s.provider = p.provider
ORDER BY p.provider;

-- name: recent_errors
-- $1 limit
SELECT provider, user_id, last_status, last_error, attempts, last_synced_at
FROM syncd.targets WHERE last_error IS NOT NULL
ORDER BY provider, user_id LIMIT $1;

-- name: quarantined_targets
-- $1 limit
-- Users whose document keeps being refused (too large, too deep, refused by
-- PostgreSQL): retried only at their provider's interval.
SELECT provider, user_id, attempts, last_error, last_synced_at
FROM syncd.targets WHERE last_status = 'quarantined'
ORDER BY provider, user_id LIMIT $1;

-- name: gauges
-- $1 provider names
-- Per provider, for /metrics: targets due now and deletions held for approval.
SELECT p.provider,
       (SELECT count(*) FROM syncd.targets t WHERE t.provider = p.provider AND t.next_sync_at <= now()) AS due,
       (SELECT count(*) FROM syncd.pending_deletions d
        WHERE d.provider = p.provider AND d.rejected_at IS NULL) AS held
FROM unnest($1::text[]) AS p(provider);

-- name: outbox_backlog
-- The outbox's unread end, for /metrics: the oldest unprocessed event (by
-- seq, through the partial index: two index probes, not a count of a backlog
-- that may be millions of rows) and the newest event.
SELECT o.seq AS first_seq, o.created_at AS first_at, (SELECT max(seq) FROM syncd.outbox) AS last_seq,
       extract(epoch FROM now() - o.created_at)::float8 AS age
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT seq, created_at FROM syncd.outbox WHERE processed_at IS NULL ORDER BY seq LIMIT 1
) o ON true;
