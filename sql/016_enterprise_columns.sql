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

-- Fill them from the raw documents already mirrored, as syncd itself maps
-- them, so the first pass after the upgrade finds each record as it was and
-- writes it quietly (no user.updated event per user for a column that is
-- only new to the mirror). A document this misses (attribute names in
-- another case) is mapped on that pass, and its event says what it gained.
UPDATE syncd.users u SET
    employee_number = e ->> 'employeeNumber',
    department      = e ->> 'department',
    cost_center     = e ->> 'costCenter',
    organization    = e ->> 'organization',
    division        = e ->> 'division',
    manager_id      = CASE WHEN jsonb_typeof(e -> 'manager') = 'object' THEN e -> 'manager' ->> 'value' END
FROM (SELECT provider, user_id,
             raw -> 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User' AS e
      FROM syncd.users) AS x
WHERE u.provider = x.provider AND u.user_id = x.user_id AND jsonb_typeof(x.e) = 'object';

UPDATE syncd.users SET organization = coalesce(raw #>> '{user,details,resourceOwner}', raw #>> '{details,resourceOwner}')
WHERE jsonb_typeof(raw -> 'user') = 'object'
  AND coalesce(raw #>> '{user,details,resourceOwner}', raw #>> '{details,resourceOwner}') IS NOT NULL;
