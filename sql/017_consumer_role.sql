-- A role for downstream consumers that claim outbox rows: what syncd_reader
-- may (read the mirror and the outbox), and mark outbox rows processed —
-- the processed_at column only, which SELECT … FOR UPDATE SKIP LOCKED needs
-- too. NOLOGIN: grant it to your app's login role (GRANT syncd_consumer TO myapp;).
-- Where syncd's own database user may not create roles (managed Postgres),
-- this warns instead of failing; create the role by hand and re-run migrate.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'syncd_consumer') THEN
        CREATE ROLE syncd_consumer NOLOGIN;
    END IF;
    GRANT USAGE ON SCHEMA syncd TO syncd_consumer;
    GRANT SELECT ON syncd.users, syncd.outbox TO syncd_consumer;
    GRANT UPDATE (processed_at) ON syncd.outbox TO syncd_consumer;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'syncd: could not create or grant role syncd_consumer (%); ask a DBA to run sql/017_consumer_role.sql', SQLERRM;
END $$;
