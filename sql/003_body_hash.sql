-- A fingerprint of the provider's last answer for each target (sha256 of the
-- response body, salted with the settings that shape the record). When the
-- provider answers the very same bytes again the user is unchanged, and the
-- engine skips parsing, mapping and hashing it.
ALTER TABLE syncd.targets ADD COLUMN body_hash text;
