-- Discovery (issue #15). Who made a user a target: an admin or the config
-- ('explicit'), or a complete listing of the provider ('discovered'); a
-- filtered listing leaves explicit targets outside its scope alone. A column
-- with a constant default: no table rewrite.
ALTER TABLE syncd.targets ADD COLUMN source text NOT NULL DEFAULT 'explicit';

-- One row per provider: the lease that lets one replica list a provider at a
-- time, when the next listing is due, and the last listing's outcome for
-- `syncd status` (how many were listed, enrolled, missing; its verdict).
CREATE TABLE syncd.discovery (
    provider          text COLLATE "C" PRIMARY KEY,
    leased_by         text,
    lease_expires_at  timestamptz,
    next_at           timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    last_success_at   timestamptz,
    verdict           text,
    reason            text,
    listed            integer,
    enrolled          integer,
    missing           integer,
    unchanged         integer
);
REVOKE ALL ON syncd.discovery FROM PUBLIC;
