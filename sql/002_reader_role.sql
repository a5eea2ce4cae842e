-- A read-only role for downstream apps: the mirror and the outbox, nothing else.
-- NOLOGIN: grant it to your app's login role (GRANT syncd_reader TO myapp;).
-- Where syncd's own database user may not create roles (managed Postgres),
-- this warns instead of failing; create the role by hand and re-run migrate.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'syncd_reader') THEN
        CREATE ROLE syncd_reader NOLOGIN;
    END IF;
    GRANT USAGE ON SCHEMA syncd TO syncd_reader;
    GRANT SELECT ON syncd.users, syncd.outbox TO syncd_reader;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'syncd: could not create or grant role syncd_reader (%); ask a DBA to run sql/002_reader_role.sql', SQLERRM;
END $$;
