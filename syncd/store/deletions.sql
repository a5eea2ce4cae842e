-- syncd's SQL for deletions (besides the migrations in sql/), loaded once by name.
-- Each block: "-- name: <name>" then a description line giving the order of
-- the positional parameters (the typed method in deletions.py names them).

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

-- name: clear_pending_deletions
-- $1 provider, $2 user ids
-- Approved, or the user answers again: forget the held or rejected deletion.
DELETE FROM syncd.pending_deletions WHERE provider = $1 AND user_id = ANY($2::text[]);

-- name: still_not_found
-- $1 provider, $2 user ids
-- Of these held deletions, the users that still answer 404 (one that came back is kept).
SELECT user_id FROM syncd.targets
WHERE provider = $1 AND user_id = ANY($2::text[]) AND not_found_count > 0;
