-- syncd's SQL for rotated refresh tokens (syncd.refresh_tokens), loaded once by name.

-- name: refresh_token
-- $1 provider, $2 origin (fingerprint of the configured refresh token)
SELECT token FROM syncd.refresh_tokens WHERE provider = $1 AND origin = $2;

-- name: lock_refresh_token
-- $1 provider
-- One rotation at a time per provider, across replicas (released at commit).
SELECT pg_advisory_xact_lock(hashtextextended('syncd.refresh_tokens:' || $1, 0));

-- name: save_refresh_token
-- $1 provider, $2 origin, $3 the newest refresh token
-- Forgets the tokens of other origins: their configured secret was replaced.
WITH gone AS (
    DELETE FROM syncd.refresh_tokens WHERE provider = $1 AND origin <> $2
)
INSERT INTO syncd.refresh_tokens AS r (provider, origin, token)
VALUES ($1, $2, $3)
ON CONFLICT (provider, origin) DO UPDATE
SET token = excluded.token, rotations = r.rotations + 1, rotated_at = now();
