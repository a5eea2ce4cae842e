-- syncd's SQL for export (a consumer's bootstrap), loaded once by name.

-- name: export_position
-- Taken in a REPEATABLE READ transaction right after LOCK TABLE syncd.outbox
-- IN SHARE MODE (which waits out every writer in flight): the snapshot this
-- statement takes sees every event up to the position and none after it, so
-- a consumer that loads the export and then reads seq > position misses no
-- event and sees none twice. The snapshot is exported for the reading
-- transaction, so the lock is held only this long.
SELECT coalesce((SELECT max(seq) FROM syncd.outbox), 0) AS outbox_seq, now() AS taken_at,
       pg_export_snapshot() AS snapshot;

-- name: export_users
-- $1 provider (NULL = all), $2 include deleted users
SELECT provider, user_id, username, display_name, given_name, family_name, email,
       email_verified, emails, phone, active, state, kind, locale, employee_number,
       department, cost_center, organization, division, manager_id, updated_at,
       source_version, raw, content_hash, changed_at, deleted_at
FROM syncd.users
WHERE ($1::text IS NULL OR provider = $1) AND ($2 OR deleted_at IS NULL)
ORDER BY provider, user_id;
