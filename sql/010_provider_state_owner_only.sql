-- Only syncd's own role steers syncd. provider_state holds the pause every
-- replica obeys: no other role may write it (nor read the rest of syncd's
-- bookkeeping). PostgreSQL grants nothing on tables to PUBLIC by default; this
-- makes sure no earlier grant (by hand, or a DBA's ALTER DEFAULT PRIVILEGES)
-- left one. NOTIFY can't be restricted in PostgreSQL: syncd treats a
-- notification as a hint and reads provider_state again (Engine.apply_remote_pause).
REVOKE ALL ON syncd.provider_state, syncd.targets, syncd.sync_runs, syncd.pending_deletions
    FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'syncd_reader') THEN
        REVOKE ALL ON syncd.provider_state, syncd.targets, syncd.sync_runs, syncd.pending_deletions
            FROM syncd_reader;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'syncd: could not revoke grants on syncd.provider_state (%); ask a DBA to run sql/010_provider_state_owner_only.sql', SQLERRM;
END $$;
