-- syncd's SQL for mirror (besides the migrations in sql/), loaded once by name.
-- Each block: "-- name: <name>" then a description line giving the order of
-- the positional parameters (the typed method in mirror.py names them).

-- name: mirror_rows
-- $1 provider, $2 user ids
SELECT user_id, username, display_name, given_name, family_name, email,
       email_verified, emails, phone, active, state, kind, locale, employee_number,
       department, cost_center, organization, division, manager_id, updated_at,
       source_version, raw, content_hash, changed_at, deleted_at
FROM syncd.users
WHERE provider = $1 AND user_id = ANY($2::text[]);

-- name: write_batch
-- $1 provider, $2 lease owner,
-- $3 changes: jsonb [[user_id, event_id, event_type, payload, content_hash], ...]
-- $4 targets: jsonb [[user_id, status, error, seconds until next sync, not_found_count,
--                     not_found_since, failed, body_hash, etag, etag_scope], ...]
-- $5 quiet refreshes: jsonb [[user_id, record, content_hash, replaced content_hash], ...]
-- Everything a batch writes, in ONE statement (atomic on its own, one round
-- trip, no BEGIN/COMMIT): insert the events; write the mirror rows of exactly
-- the events that went in (an event id that already exists, because a racing
-- writer got there first, writes nothing) and only for targets this writer
-- still leases; release the batch's leases and
-- schedule each target's next sync; NOTIFY syncd_outbox with the number of
-- events (delivered at commit). The rows come as two jsonb documents rather
-- than a dozen arrays: see ChangeSet in batch.py.
-- The mirror row is the event's payload.after (NULL after = a deletion). A
-- payload sent without "patch" is a creation: its patch is built here, one
-- RFC 6902 "add" of the whole document at the root (saves sending it twice).
-- A quiet refresh (only ignored or representation fields changed) rewrites
-- the mirror row with no event and leaves changed_at: only for a target this
-- writer leases, and only over the row it was planned against.
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
        email_verified, emails, phone, active, state, kind, locale, employee_number,
        department, cost_center, organization, division, manager_id, updated_at,
        source_version, raw, content_hash)
    SELECT $1, w.user_id, r.username, r.display_name, r.given_name, r.family_name, r.email,
           r.email_verified, coalesce(w.record -> 'emails', '[]'), r.phone, r.active, r.state,
           coalesce(r.kind, 'human'), r.locale, r.employee_number, r.department, r.cost_center,
           r.organization, r.division, r.manager_id, r.updated_at, r.source_version,
           w.record -> 'raw', w.content_hash
    FROM written w,
         jsonb_to_record(w.record) AS r(
             username text, display_name text, given_name text, family_name text, email text,
             email_verified boolean, phone text, active boolean, state text, kind text,
             locale text, employee_number text, department text, cost_center text,
             organization text, division text, manager_id text, updated_at timestamptz,
             source_version text)
    WHERE w.record IS NOT NULL
    ON CONFLICT (provider, user_id) DO UPDATE SET
        username = EXCLUDED.username, display_name = EXCLUDED.display_name,
        given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name,
        email = EXCLUDED.email, email_verified = EXCLUDED.email_verified,
        emails = EXCLUDED.emails, phone = EXCLUDED.phone, active = EXCLUDED.active,
        state = EXCLUDED.state, kind = EXCLUDED.kind, locale = EXCLUDED.locale,
        employee_number = EXCLUDED.employee_number, department = EXCLUDED.department,
        cost_center = EXCLUDED.cost_center, organization = EXCLUDED.organization,
        division = EXCLUDED.division, manager_id = EXCLUDED.manager_id,
        updated_at = EXCLUDED.updated_at, source_version = EXCLUDED.source_version,
        raw = EXCLUDED.raw, content_hash = EXCLUDED.content_hash,
        synced_at = now(), changed_at = now(), deleted_at = NULL
    RETURNING 1
), quiet AS (
    SELECT f ->> 0 AS user_id, f -> 1 AS record, f ->> 2 AS content_hash, f ->> 3 AS replaces
    FROM jsonb_array_elements($5::jsonb) AS f
), refreshed AS (
    -- the record's columns by name (jsonb_populate_record: a record key is
    -- its column's name); changed_at stays, as nothing a reader acts on changed
    UPDATE syncd.users u SET
        (username, display_name, given_name, family_name, email, email_verified, emails,
         phone, active, state, kind, locale, employee_number, department, cost_center,
         organization, division, manager_id, updated_at, source_version, raw) =
        (r.username, r.display_name, r.given_name, r.family_name, r.email, r.email_verified,
         coalesce(r.emails, '[]'), r.phone, r.active, r.state, coalesce(r.kind, 'human'),
         r.locale, r.employee_number, r.department, r.cost_center, r.organization,
         r.division, r.manager_id, r.updated_at, r.source_version, r.raw),
        content_hash = q.content_hash, synced_at = now()
    FROM quiet q
    JOIN syncd.targets t ON t.provider = $1 AND t.user_id = q.user_id AND t.leased_by = $2
    CROSS JOIN LATERAL jsonb_populate_record(NULL::syncd.users, q.record) AS r
    WHERE u.provider = $1 AND u.user_id = q.user_id AND u.content_hash = q.replaces
      AND u.deleted_at IS NULL
    RETURNING u.user_id
), unrefreshed AS (
    -- a quiet rewrite the guard skipped (the row changed since): the answer's
    -- fingerprint and ETag are not kept, so the next read maps it again
    SELECT user_id FROM quiet WHERE (user_id IN (SELECT user_id FROM refreshed)) IS NOT TRUE
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
        body_hash = CASE WHEN (i.user_id IN (SELECT user_id FROM unrefreshed)) IS TRUE THEN NULL
                         ELSE i.body_hash END,
        -- the ETag of the answer just planned (NULL clears it: a failure, or
        -- a 200 without one); after a 304, the one that was sent
        etag = CASE WHEN (i.user_id IN (SELECT user_id FROM unrefreshed)) IS TRUE THEN NULL
                    ELSE i.etag END,
        etag_scope = i.etag_scope
    FROM (SELECT b ->> 0 AS user_id, b ->> 1 AS status, b ->> 2 AS error,
                 (b ->> 3)::float8 AS next_in, (b ->> 4)::int AS nf_count,
                 (b ->> 5)::timestamptz AS nf_since, (b ->> 6)::bool AS failed, b ->> 7 AS body_hash,
                 b ->> 8 AS etag, b ->> 9 AS etag_scope
          FROM jsonb_array_elements($4::jsonb) AS b) AS i
    WHERE t.provider = $1 AND t.user_id = i.user_id AND t.leased_by = $2
    RETURNING 1
), counted AS (
    SELECT count(*) AS events FROM ev
)
SELECT c.events,
       (SELECT count(*) FROM upserted) + (SELECT count(*) FROM deleted) AS rows,
       (SELECT count(*) FROM refreshed) AS refreshed,
       (SELECT count(*) FROM finished) AS targets,
       CASE WHEN c.events > 0 THEN pg_notify('syncd_outbox', c.events::text) END AS notified
FROM counted c;

-- name: mirror
-- $1 provider (NULL = all), $2 limit
SELECT provider, user_id, username, display_name, email, active, state, kind,
       source_version, changed_at, deleted_at
FROM syncd.users WHERE ($1::text IS NULL OR provider = $1)
ORDER BY provider, user_id LIMIT $2;
