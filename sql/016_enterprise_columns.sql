-- The SCIM enterprise extension (RFC 7643 §4.3) as typed mirror columns
-- (issue #17), for downstream readers that filter or join on them: filled
-- by the scim and webex types (and Wacht's SCIM shape) from
-- urn:ietf:params:scim:schemas:extension:enterprise:2.0:User; ZITADEL
-- fills organization with the user's resource owner (its organization id).
-- Nullable, no default: adding them rewrites nothing.
ALTER TABLE syncd.users
    ADD COLUMN employee_number text,
    ADD COLUMN department      text,
    ADD COLUMN cost_center     text,
    ADD COLUMN organization    text,
    ADD COLUMN division        text,
    ADD COLUMN manager_id      text;

-- Fill them from the raw documents already mirrored, by the rules syncd
-- maps them by (syncd/providers/scim.py enterprise_fields, zitadel.py;
-- documents.text_value: a JSON string or number, never an empty string),
-- so the first pass after the upgrade finds each record as it was and
-- rewrites it quietly: no user.updated per user for a column that is only
-- new to the mirror. A document this misses (attribute names in another
-- case) is mapped on that pass, and its event says what it gained. Only
-- the rows that have something to fill are written.
CREATE FUNCTION pg_temp.text_value(v jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(v) IN ('string', 'number') THEN nullif(v #>> '{}', '') END
$$;

UPDATE syncd.users SET
    employee_number = pg_temp.text_value(raw #> '{urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,employeeNumber}'),
    department      = pg_temp.text_value(raw #> '{urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,department}'),
    cost_center     = pg_temp.text_value(raw #> '{urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,costCenter}'),
    organization    = pg_temp.text_value(raw #> '{urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,organization}'),
    division        = pg_temp.text_value(raw #> '{urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,division}'),
    manager_id      = pg_temp.text_value(CASE
        WHEN jsonb_typeof(raw #> '{urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,manager}') = 'object'
        THEN raw #> '{urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,manager,value}'
        ELSE raw #> '{urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,manager}' END)
WHERE jsonb_typeof(raw -> 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User') = 'object';

-- ZITADEL: {"details": …, "user": {"userId": …, "details": …}}; the user's
-- own details when they are a non-empty object, else the answer's
UPDATE syncd.users SET organization = pg_temp.text_value(CASE
        WHEN jsonb_typeof(raw #> '{user,details}') = 'object' AND raw #> '{user,details}' <> '{}'::jsonb
        THEN raw #> '{user,details,resourceOwner}'
        WHEN jsonb_typeof(raw -> 'details') = 'object' THEN raw #> '{details,resourceOwner}' END)
WHERE jsonb_typeof(raw -> 'user') = 'object' AND raw -> 'user' ? 'userId';

DROP FUNCTION pg_temp.text_value(jsonb);
