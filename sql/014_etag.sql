-- Conditional reads (issue #16): the ETag (RFC 9110 §8.8.3) of each target's
-- last by-id answer, sent back as If-None-Match; a 304 Not Modified then
-- leaves the mirror row as it is (RFC 7644 §3.14). etag_scope is the digest
-- of the settings the mirror row was mapped under (the body_hash salt): an
-- ETag kept under other settings is not sent, so an upgrade or an edited
-- ignore/redact setting still maps every user again. NULL: none, a plain
-- GET. Nullable columns without a default: no table rewrite.
ALTER TABLE syncd.targets ADD COLUMN etag text, ADD COLUMN etag_scope text;
