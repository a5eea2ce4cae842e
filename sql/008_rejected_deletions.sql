-- `syncd deletions reject` is remembered: a rejected user stays in the mirror
-- while it keeps answering 404, until it answers again (its row is then
-- removed). Before, a rejection only restarted the 404 count, so the same
-- deletion came back after a few more passes.
ALTER TABLE syncd.pending_deletions ADD COLUMN rejected_at timestamptz;
