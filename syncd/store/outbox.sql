-- syncd's SQL for outbox (besides the migrations in sql/), loaded once by name.
-- Each block: "-- name: <name>" then a description line giving the order of
-- the positional parameters (the typed method in outbox.py names them).

-- name: claim_outbox
-- $1 limit
-- For consumers: claim the oldest unprocessed events; SKIP LOCKED lets several
-- consumers share the stream. Call mark_processed in the same transaction.
SELECT id, aggregatetype, aggregateid, type, payload, created_at, seq
FROM syncd.outbox WHERE processed_at IS NULL
ORDER BY seq LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: mark_processed
-- $1 event ids
UPDATE syncd.outbox SET processed_at = now() WHERE id = ANY($1::uuid[]);

-- name: prune_outbox
-- $1 older than seconds, $2 also unprocessed events
DELETE FROM syncd.outbox
WHERE created_at < now() - make_interval(secs => $1)
  AND ($2 OR processed_at IS NOT NULL);

-- name: events
-- $1 provider (NULL = all), $2 limit
SELECT id, aggregateid, type, payload, created_at, seq FROM syncd.outbox
WHERE ($1::text IS NULL OR aggregateid LIKE $1 || ':%')
ORDER BY seq DESC LIMIT $2;

-- name: event_counts
-- no parameters
SELECT type, count(*) AS n FROM syncd.outbox GROUP BY type ORDER BY type;

-- name: sample_events
-- no parameters
-- One event of each non-create type per provider (for the demo).
SELECT DISTINCT ON (payload ->> 'provider', type) type, aggregateid, payload
FROM syncd.outbox WHERE type <> 'user.created'
ORDER BY payload ->> 'provider', type, seq;
