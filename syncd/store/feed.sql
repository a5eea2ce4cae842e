-- syncd's SQL for change feeds (syncd.feed_watermarks), loaded once by name.

-- name: feed_watermark
-- $1 provider
SELECT watermark FROM syncd.feed_watermarks WHERE provider = $1;

-- name: advance_feed
-- $1 provider, $2 the newest change seen, $3 users listed, $4 made due
-- Never backwards: two replicas walking at once keep the newer watermark.
INSERT INTO syncd.feed_watermarks AS f (provider, watermark, listed, made_due)
VALUES ($1, $2, $3, $4)
ON CONFLICT (provider) DO UPDATE
SET watermark = greatest(f.watermark, excluded.watermark), walked_at = now(),
    listed = excluded.listed, made_due = excluded.made_due;
