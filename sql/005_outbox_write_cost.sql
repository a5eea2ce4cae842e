-- Two costs of writing an event that the benchmark found (bench/README.md).
--
-- 1. The statement-level NOTIFY trigger declared a transition table only to
--    count the new rows, so PostgreSQL copied every inserted event (payload
--    included) into a tuplestore. The statement that inserts events
--    (write_batch in syncd/store/mirror.sql) now sends the same notification
--    itself: channel syncd_outbox, payload the number of events, delivered
--    at commit.
DROP TRIGGER IF EXISTS outbox_notify ON syncd.outbox;
DROP FUNCTION IF EXISTS syncd.notify_outbox();

-- 2. Where the server has no lz4 (004 kept pglz), compressing every event
--    payload with pglz was a fifth of PostgreSQL's time in a first sync.
--    Events are short-lived (consumed, then pruned), so keep them
--    uncompressed and inline up to a page: toast_tuple_target is the row
--    size above which PostgreSQL starts compressing. With lz4 nothing changes.
DO $$
DECLARE
    method "char";
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE $q$SELECT attcompression FROM pg_attribute
                   WHERE attrelid = 'syncd.outbox'::regclass AND attname = 'payload'$q$
            INTO method;
    END IF;
    IF method IS DISTINCT FROM 'l' THEN
        ALTER TABLE syncd.outbox SET (toast_tuple_target = 8160);
    END IF;
END $$;
