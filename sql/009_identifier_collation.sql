-- Provider names, user ids and outbox aggregate ids are identifiers: they
-- compare as bytes (COLLATE "C"), not as words of a language.
--
-- Under the database's collation (often en_US.UTF-8, or C.UTF-8, which a
-- libc-provider database also compares through the C library's strcoll) every
-- comparison in their B-trees took the locale path: a created user descends
-- about ten of them (the targets, mirror and outbox keys) at some 17
-- comparisons each, the lease and the bookkeeping of every synced user two
-- more. In a first sync on C.UTF-8, text comparison and hashing were 11 % of
-- PostgreSQL's CPU samples (perf); with "C", 6 %. Slower locales gain more.
--
-- Orderings by these columns become byte order (`ORDER BY user_id`), the
-- same on every server whatever its locale; equality is unchanged. Changing
-- a collation does not rewrite the tables; it rebuilds the indexes on those
-- columns under an exclusive lock (run `syncd migrate` before starting the
-- upgraded replicas, as for every migration; stop the old ones first on a
-- large mirror). A view of these columns (a downstream app's) makes it fail:
-- drop the view, migrate, create it again.
--
-- Every table up front, in one statement: taken one ALTER at a time, the lock
-- on users was held for its index rebuild while waiting for targets, which a
-- running replica's statement could hold while waiting for users. This makes
-- such a deadlock unlikely, not impossible (LOCK takes its tables in turn);
-- PostgreSQL settles one by aborting a side, and migrate then applies nothing.
LOCK TABLE syncd.targets, syncd.users, syncd.outbox, syncd.pending_deletions, syncd.provider_state,
    syncd.sync_runs IN ACCESS EXCLUSIVE MODE;
ALTER TABLE syncd.users
    ALTER COLUMN provider TYPE text COLLATE "C",
    ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE syncd.targets
    ALTER COLUMN provider TYPE text COLLATE "C",
    ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE syncd.outbox
    ALTER COLUMN aggregateid TYPE text COLLATE "C";
ALTER TABLE syncd.pending_deletions
    ALTER COLUMN provider TYPE text COLLATE "C",
    ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE syncd.provider_state
    ALTER COLUMN provider TYPE text COLLATE "C";
ALTER TABLE syncd.sync_runs
    ALTER COLUMN provider TYPE text COLLATE "C";
-- a type change drops the columns' statistics: plan from fresh ones at once
ANALYZE syncd.users, syncd.targets, syncd.outbox, syncd.pending_deletions, syncd.provider_state,
    syncd.sync_runs;
