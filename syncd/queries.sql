-- All of syncd's SQL (besides the migrations in sql/), loaded once by name.
-- Each block: "-- name: <name>" then a description line giving the order of
-- the positional parameters.

-- name: lease_due
-- $1 provider, $2 lease owner, $3 lease seconds, $4 batch size, $5 only these user ids (NULL = any)
-- Lease due targets (SKIP LOCKED: replicas share the work) and return what
-- the engine needs to diff them without another round trip.
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
              t.added_at, t.last_status
)
SELECT l.user_id, l.not_found_count, l.not_found_since, l.attempts, l.body_hash, l.last_synced_at, l.added_at,
       l.last_status, u.content_hash, u.changed_at, u.deleted_at
FROM leased l
LEFT JOIN syncd.users u ON u.provider = $1 AND u.user_id = l.user_id;

-- name: peek_targets
-- $1 provider, $2 only these user ids (NULL = all), $3 limit, $4 after this user id
-- Targets with their mirror hash, without leasing: for --dry-run, with the
-- columns lease_due returns (the dry run plans them as a pass would). Given
-- ids need not be targets yet (a dry run adds none).
WITH ids AS (
    SELECT t.user_id, t.not_found_count, t.not_found_since, t.attempts, t.body_hash,
           t.last_synced_at, t.added_at, t.last_status
    FROM syncd.targets t
    WHERE t.provider = $1 AND $2::text[] IS NULL AND t.user_id > $4
    UNION ALL
    SELECT i.id, coalesce(t.not_found_count, 0), t.not_found_since, coalesce(t.attempts, 0), t.body_hash,
           t.last_synced_at, t.added_at, t.last_status
    FROM unnest($2::text[]) AS i(id)
    LEFT JOIN syncd.targets t ON t.provider = $1 AND t.user_id = i.id
    -- byte order, as the ORDER BY below sorts (the result takes user_id's "C"):
    -- under the database's collation, pages would skip or repeat ids
    WHERE i.id COLLATE "C" > $4
)
SELECT i.user_id, i.not_found_count, i.not_found_since, i.attempts, i.body_hash,
       i.last_synced_at, i.added_at, i.last_status,
       u.content_hash, u.changed_at, u.deleted_at
FROM ids i
LEFT JOIN syncd.users u ON u.provider = $1 AND u.user_id = i.user_id
ORDER BY i.user_id
LIMIT $3;

-- name: mirror_rows
-- $1 provider, $2 user ids
SELECT user_id, username, display_name, given_name, family_name, email,
       email_verified, emails, phone, active, state, kind, locale, updated_at,
       source_version, raw, content_hash, changed_at, deleted_at
FROM syncd.users
WHERE provider = $1 AND user_id = ANY($2::text[]);

-- name: write_batch
-- $1 provider, $2 lease owner,
-- $3 changes: jsonb [[user_id, event_id, event_type, payload, content_hash], ...]
-- $4 targets: jsonb [[user_id, status, error, seconds until next sync, not_found_count,
--                     not_found_since, failed, body_hash], ...]
-- Everything a batch writes, in ONE statement (atomic on its own, one round
-- trip, no BEGIN/COMMIT): insert the events; write the mirror rows of exactly
-- the events that went in (an event id that already exists, because a racing
-- writer got there first, writes nothing) and only for targets this writer
-- still leases; release the batch's leases and
-- schedule each target's next sync; NOTIFY syncd_outbox with the number of
-- events (delivered at commit). The rows come as two jsonb documents rather
-- than a dozen arrays: see ChangeSet in store.py.
-- The mirror row is the event's payload.after (NULL after = a deletion). A
-- payload sent without "patch" is a creation: its patch is built here, one
-- RFC 6902 "add" of the whole document at the root (saves sending it twice).
WITH rows AS (
    SELECT c ->> 0 AS user_id, (c ->> 1)::uuid AS event_id, c ->> 2 AS event_type,
           c -> 3 AS payload, c ->> 4 AS content_hash
    FROM jsonb_array_elements($3::jsonb) AS c
), input AS (
    -- only users whose target this writer still leases: a writer that stalled
    -- past its lease (a paused VM, failing renewals) must not put back an old
    -- version over what the replica that took the lease over wrote since
    SELECT r.*, nullif(r.payload -> 'after', 'null'::jsonb) AS record
    FROM rows r
    JOIN syncd.targets t ON t.provider = $1 AND t.user_id = r.user_id AND t.leased_by = $2
), ev AS (
    INSERT INTO syncd.outbox (id, aggregatetype, aggregateid, type, payload)
    SELECT event_id, 'user', $1 || ':' || user_id, event_type,
           -- jsonb_set, not ||: one pass less over the document (~2 µs a creation)
           CASE WHEN payload ? 'patch' THEN payload
                ELSE jsonb_set(payload, '{patch}', jsonb_build_array(
                    jsonb_build_object('op', 'add', 'path', '', 'value', record)))
           END
    FROM input
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), written AS (
    -- the events that went in, looked up in a hash of ev's ids: "IS TRUE" keeps
    -- the IN a hashed subplan. As a join (or a bare IN, which PostgreSQL turns
    -- into one) it was planned as a nested loop over the two CTEs, because the
    -- planner can't count a jsonb parameter's rows and guesses one: 1,000 x
    -- 1,000 comparisons per batch, half of the statement's time in a first sync
    SELECT input.user_id, input.record, input.content_hash FROM input
    WHERE (input.event_id IN (SELECT id FROM ev)) IS TRUE
), upserted AS (
    INSERT INTO syncd.users AS u (
        provider, user_id, username, display_name, given_name, family_name, email,
        email_verified, emails, phone, active, state, kind, locale, updated_at,
        source_version, raw, content_hash)
    SELECT $1, w.user_id, r.username, r.display_name, r.given_name, r.family_name, r.email,
           r.email_verified, coalesce(w.record -> 'emails', '[]'), r.phone, r.active, r.state,
           coalesce(r.kind, 'human'), r.locale, r.updated_at, r.source_version,
           w.record -> 'raw', w.content_hash
    FROM written w,
         jsonb_to_record(w.record) AS r(
             username text, display_name text, given_name text, family_name text, email text,
             email_verified boolean, phone text, active boolean, state text, kind text,
             locale text, updated_at timestamptz, source_version text)
    WHERE w.record IS NOT NULL
    ON CONFLICT (provider, user_id) DO UPDATE SET
        username = EXCLUDED.username, display_name = EXCLUDED.display_name,
        given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name,
        email = EXCLUDED.email, email_verified = EXCLUDED.email_verified,
        emails = EXCLUDED.emails, phone = EXCLUDED.phone, active = EXCLUDED.active,
        state = EXCLUDED.state, kind = EXCLUDED.kind, locale = EXCLUDED.locale,
        updated_at = EXCLUDED.updated_at, source_version = EXCLUDED.source_version,
        raw = EXCLUDED.raw, content_hash = EXCLUDED.content_hash,
        synced_at = now(), changed_at = now(), deleted_at = NULL
    RETURNING 1
), deleted AS (
    UPDATE syncd.users u SET deleted_at = now(), changed_at = now()
    FROM written w
    WHERE w.record IS NULL AND u.provider = $1 AND u.user_id = w.user_id
    RETURNING 1
), finished AS (
    -- only rows still leased by us: a lease that expired and was taken over is not ours
    UPDATE syncd.targets t SET
        -- a confirmed deletion keeps its lease until the pass has written it
        -- (or held it) after the mass-deletion guard: see Engine._apply_deletions
        leased_by = CASE WHEN i.status = 'deleting' THEN t.leased_by END,
        lease_expires_at = CASE WHEN i.status = 'deleting' THEN t.lease_expires_at END,
        next_sync_at = now() + make_interval(secs => i.next_in),
        last_synced_at = CASE WHEN i.failed THEN t.last_synced_at ELSE now() END,
        last_status = i.status,
        last_error = i.error,
        attempts = CASE WHEN i.failed THEN t.attempts + 1 ELSE 0 END,
        not_found_count = i.nf_count,
        not_found_since = i.nf_since,
        body_hash = i.body_hash
    FROM (SELECT b ->> 0 AS user_id, b ->> 1 AS status, b ->> 2 AS error,
                 (b ->> 3)::float8 AS next_in, (b ->> 4)::int AS nf_count,
                 (b ->> 5)::timestamptz AS nf_since, (b ->> 6)::bool AS failed, b ->> 7 AS body_hash
          FROM jsonb_array_elements($4::jsonb) AS b) AS i
    WHERE t.provider = $1 AND t.user_id = i.user_id AND t.leased_by = $2
    RETURNING 1
), counted AS (
    SELECT count(*) AS events FROM ev
)
SELECT c.events,
       (SELECT count(*) FROM upserted) + (SELECT count(*) FROM deleted) AS rows,
       (SELECT count(*) FROM finished) AS targets,
       CASE WHEN c.events > 0 THEN pg_notify('syncd_outbox', c.events::text) END AS notified
FROM counted c;

-- name: release_leases
-- $1 lease owner, $2 provider (NULL = every provider)
-- Give leased targets back without syncing them (end of a pass, shutdown).
UPDATE syncd.targets SET leased_by = NULL, lease_expires_at = NULL
WHERE leased_by = $1 AND ($2::text IS NULL OR provider = $2);

-- name: add_targets
-- $1 provider, $2 user ids
-- Add targets (due now); existing ones are left as they are.
INSERT INTO syncd.targets (provider, user_id)
SELECT $1, u FROM unnest($2::text[]) AS u
ON CONFLICT (provider, user_id) DO NOTHING;

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
-- $8 unchanged, $9 failed, $10 not_found, $11 held, $12 error
UPDATE syncd.sync_runs SET
    finished_at = now(), status = $2, fetched = $3, created = $4, updated = $5,
    deleted = $6, restored = $7, unchanged = $8, failed = $9, not_found = $10,
    held = $11, error = $12
WHERE id = $1;

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

-- name: recent_runs
-- $1 limit
SELECT id, provider, trigger, replica, started_at, finished_at, status, fetched, created,
       updated, deleted, restored, unchanged, failed, not_found, held, error
FROM syncd.sync_runs ORDER BY id DESC LIMIT $1;

-- name: get_pause
-- $1 provider
SELECT paused_until, pause_reason, updated_at FROM syncd.provider_state WHERE provider = $1;

-- name: set_pause
-- $1 provider, $2 paused until, $3 reason
-- Only ever extends a pause; tells the other replicas at once.
WITH up AS (
    INSERT INTO syncd.provider_state AS s (provider, paused_until, pause_reason)
    VALUES ($1, $2, $3)
    ON CONFLICT (provider) DO UPDATE SET
        paused_until = greatest(s.paused_until, EXCLUDED.paused_until),
        pause_reason = EXCLUDED.pause_reason, updated_at = now()
    RETURNING provider, paused_until
)
SELECT pg_notify('syncd_provider_state', provider || ' ' || extract(epoch FROM paused_until)::text)
FROM up;

-- name: clear_pause
-- $1 provider, $2 the reason that marks a cleared pause
-- End a provider's pause for every replica; each re-reads provider_state on
-- the NOTIFY (a hint only: the row is the truth) and drops its own pause.
WITH old AS (
    SELECT paused_until FROM syncd.provider_state WHERE provider = $1
), up AS (
    INSERT INTO syncd.provider_state AS s (provider, paused_until, pause_reason)
    VALUES ($1, NULL, $2)
    ON CONFLICT (provider) DO UPDATE SET paused_until = NULL, pause_reason = $2, updated_at = now()
    RETURNING provider
)
SELECT (SELECT paused_until FROM old) AS was_until, pg_notify('syncd_provider_state', up.provider)
FROM up;

-- name: set_circuit
-- $1 provider, $2 circuit state
INSERT INTO syncd.provider_state AS s (provider, circuit) VALUES ($1, $2)
ON CONFLICT (provider) DO UPDATE SET circuit = EXCLUDED.circuit, updated_at = now();

-- name: live_count
-- $1 provider, $2 window seconds
-- Mirrored users of a provider, those deleted within the window, and deletions
-- held for approval (mass-deletion guard).
SELECT count(*) FILTER (WHERE deleted_at IS NULL) AS live,
       count(*) FILTER (WHERE deleted_at > now() - make_interval(secs => $2)) AS recently_deleted,
       (SELECT count(*) FROM syncd.pending_deletions d
        WHERE d.provider = $1 AND d.rejected_at IS NULL) AS held
FROM syncd.users WHERE provider = $1;

-- name: hold_deletions
-- $1 provider, $2 user ids, $3 run id
INSERT INTO syncd.pending_deletions (provider, user_id, run_id)
SELECT $1, u, $3 FROM unnest($2::text[]) AS u
ON CONFLICT (provider, user_id) DO NOTHING;

-- name: pending_deletions
-- $1 provider
SELECT user_id, detected_at FROM syncd.pending_deletions
WHERE provider = $1 AND rejected_at IS NULL ORDER BY user_id;

-- name: decided_deletions
-- $1 provider, $2 user ids
-- Of these users, those with a deletion held (rejected = false) or rejected by an admin.
SELECT user_id, rejected_at IS NOT NULL AS rejected FROM syncd.pending_deletions
WHERE provider = $1 AND user_id = ANY($2::text[]);

-- name: reject_deletions
-- $1 provider, $2 user ids
-- Remembered until the user answers again (then clear_pending_deletions).
UPDATE syncd.pending_deletions SET rejected_at = now()
WHERE provider = $1 AND user_id = ANY($2::text[]) AND rejected_at IS NULL;

-- name: lease_ids
-- $1 provider, $2 lease owner, $3 lease seconds, $4 user ids
-- Lease these targets unless a pass holds them (`deletions approve|reject`
-- must not race a pass over the same users); returns the ones leased.
UPDATE syncd.targets SET leased_by = $2, lease_expires_at = now() + make_interval(secs => $3::float8)
WHERE provider = $1 AND user_id = ANY($4::text[])
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
RETURNING user_id;

-- name: clear_pending_deletions
-- $1 provider, $2 user ids
-- Approved, or the user answers again: forget the held or rejected deletion.
DELETE FROM syncd.pending_deletions WHERE provider = $1 AND user_id = ANY($2::text[]);

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

-- name: mirror
-- $1 provider (NULL = all), $2 limit
SELECT provider, user_id, username, display_name, email, active, state, kind,
       source_version, changed_at, deleted_at
FROM syncd.users WHERE ($1::text IS NULL OR provider = $1)
ORDER BY provider, user_id LIMIT $2;

-- name: gauges
-- $1 provider names
-- Per provider, for /metrics: targets due now and deletions held for approval.
SELECT p.provider,
       (SELECT count(*) FROM syncd.targets t WHERE t.provider = p.provider AND t.next_sync_at <= now()) AS due,
       (SELECT count(*) FROM syncd.pending_deletions d
        WHERE d.provider = p.provider AND d.rejected_at IS NULL) AS held
FROM unnest($1::text[]) AS p(provider);

-- name: set_target_status
-- $1 provider, $2 user ids, $3 status, $4 error
UPDATE syncd.targets SET last_status = $3, last_error = $4
WHERE provider = $1 AND user_id = ANY($2::text[]);

-- name: peek_due
-- $1 provider
-- Is anything due (and not leased)? Cheap check before starting a pass.
SELECT 1 FROM syncd.targets
WHERE provider = $1 AND next_sync_at <= now()
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
LIMIT 1;

-- name: rehash
-- $1 provider, $2 user ids, $3 content hashes
-- The record is the same but its hash changed (ignore_fields was edited):
-- store the new hash; nothing changed, so no event.
UPDATE syncd.users u SET content_hash = i.h
FROM unnest($2::text[], $3::text[]) AS i(user_id, h)
WHERE u.provider = $1 AND u.user_id = i.user_id;

-- name: notify_resync
-- $1 provider
-- `resync --enqueue`: wake the running daemons' job for this provider.
SELECT pg_notify('syncd_resync', $1);

-- name: count_targets
-- $1 provider
SELECT count(*) AS n FROM syncd.targets WHERE provider = $1;

-- name: still_not_found
-- $1 provider, $2 user ids
-- Of these held deletions, the users that still answer 404 (one that came back is kept).
SELECT user_id FROM syncd.targets
WHERE provider = $1 AND user_id = ANY($2::text[]) AND not_found_count > 0;

-- name: event_counts
-- no parameters
SELECT type, count(*) AS n FROM syncd.outbox GROUP BY type ORDER BY type;

-- name: sample_events
-- no parameters
-- One event of each non-create type per provider (for the demo).
SELECT DISTINCT ON (payload ->> 'provider', type) type, aggregateid, payload
FROM syncd.outbox WHERE type <> 'user.created'
ORDER BY payload ->> 'provider', type, seq;

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

-- name: prune_runs
-- $1 older than seconds
DELETE FROM syncd.sync_runs WHERE finished_at < now() - make_interval(secs => $1);

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
