-- Store the big jsonb columns with lz4 where the server supports it
-- (PostgreSQL 14+ built with lz4): several times cheaper to compress than
-- the default pglz, and the outbox payload and raw documents are most of
-- what a first sync writes. Servers without lz4 keep pglz.
DO $$
BEGIN
    ALTER TABLE syncd.outbox ALTER COLUMN payload SET COMPRESSION lz4;
    ALTER TABLE syncd.users ALTER COLUMN raw SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR syntax_error OR undefined_object THEN
    RAISE NOTICE 'syncd: lz4 column compression not available (%); keeping pglz', SQLERRM;
END $$;
