-- Rotated OAuth 2.0 refresh tokens (issue #17; RFC 6749 §6: a server may
-- answer a refresh with a new refresh token and revoke the old one). The
-- newest one of each provider lives here, shared by the replicas and read by
-- the next process; ``origin`` is a fingerprint (a SHA-256 prefix) of the
-- refresh token in the configured secret, so that an admin who puts a new
-- one there is obeyed rather than the stale stored descendant of the old.
-- A credential: only syncd's own role may read or write it.
CREATE TABLE syncd.refresh_tokens (
    provider   text COLLATE "C" NOT NULL,
    origin     text COLLATE "C" NOT NULL,
    token      text NOT NULL,
    rotations  bigint NOT NULL DEFAULT 1,
    rotated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, origin)
);
REVOKE ALL ON syncd.refresh_tokens FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'syncd_reader') THEN
        REVOKE ALL ON syncd.refresh_tokens FROM syncd_reader;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'syncd: could not revoke grants on syncd.refresh_tokens (%); ask a DBA to run sql/015_refresh_tokens.sql', SQLERRM;
END $$;
