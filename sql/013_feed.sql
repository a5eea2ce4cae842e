-- Change feeds (issue #16): per provider, the newest change a feed walk saw
-- (the provider's own meta.lastModified, so our clock's skew doesn't matter)
-- and when it last walked. The next walk asks for changes after the
-- watermark less the overlap window. Only syncd's own role reads it.
CREATE TABLE syncd.feed_watermarks (
    provider   text COLLATE "C" PRIMARY KEY,
    watermark  timestamptz NOT NULL,
    walked_at  timestamptz NOT NULL DEFAULT now(),
    listed     integer     NOT NULL DEFAULT 0,
    made_due   integer     NOT NULL DEFAULT 0
);
REVOKE ALL ON syncd.feed_watermarks FROM PUBLIC;
