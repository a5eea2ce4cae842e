-- Freshness under a request budget (issue #16): how a pass read its users
-- ('batch' or 'by_id') and how many requests it sent, so `syncd status`
-- shows requests per user refreshed. NULL for passes recorded before.
ALTER TABLE syncd.sync_runs ADD COLUMN read_mode text, ADD COLUMN requests integer;
