-- syncd schema, version 1: the mirror, the outbox, the per-user schedule,
-- shared provider state and the run report.

CREATE TABLE syncd.users (
    provider        text        NOT NULL,
    user_id         text        NOT NULL,
    username        text,
    display_name    text,
    given_name      text,
    family_name     text,
    email           text,
    email_verified  boolean,
    emails          jsonb       NOT NULL DEFAULT '[]',
    phone           text,
    active          boolean,
    state           text,
    kind            text        NOT NULL DEFAULT 'human' CHECK (kind IN ('human', 'machine')),
    locale          text,
    updated_at      timestamptz,
    source_version  text,
    -- the provider's document, credential material stripped
    raw             jsonb       NOT NULL,
    -- sha256 of the canonical record minus ignore_fields: equal hash = unchanged
    content_hash    text        NOT NULL,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    -- when this row was last written from a fetch (unchanged fetches do not write;
    -- see syncd.targets.last_synced_at for freshness)
    synced_at       timestamptz NOT NULL DEFAULT now(),
    changed_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    PRIMARY KEY (provider, user_id)
);
CREATE INDEX users_email_idx ON syncd.users (lower(email));
CREATE INDEX users_deleted_at_idx ON syncd.users (provider, deleted_at) WHERE deleted_at IS NOT NULL;

-- Debezium outbox event router compatible (id, aggregatetype, aggregateid, type, payload)
CREATE TABLE syncd.outbox (
    id             uuid        PRIMARY KEY,
    aggregatetype  text        NOT NULL DEFAULT 'user',
    aggregateid    text        NOT NULL,
    type           text        NOT NULL,
    payload        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- commit-independent total order for consumers that poll
    seq            bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    -- set by `syncd outbox claim` style consumers; NULL = not yet processed
    processed_at   timestamptz
);
CREATE INDEX outbox_unprocessed_idx ON syncd.outbox (seq) WHERE processed_at IS NULL;
CREATE INDEX outbox_created_at_idx ON syncd.outbox (created_at);
CREATE INDEX outbox_aggregateid_idx ON syncd.outbox (aggregateid, seq);

-- one notification per statement (not per row): consumers LISTEN syncd_outbox
CREATE FUNCTION syncd.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('syncd_outbox', (SELECT count(*)::text FROM new_rows));
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON syncd.outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION syncd.notify_outbox();

CREATE TABLE syncd.targets (
    provider          text        NOT NULL,
    user_id           text        NOT NULL,
    added_at          timestamptz NOT NULL DEFAULT now(),
    next_sync_at      timestamptz NOT NULL DEFAULT now(),
    leased_by         text,
    lease_expires_at  timestamptz,
    -- consecutive failed attempts; reset by a successful fetch
    attempts          integer     NOT NULL DEFAULT 0,
    last_synced_at    timestamptz,
    last_status       text,
    last_error        text,
    -- deletion confirmation: 404s in a row and when the first came
    not_found_count   integer     NOT NULL DEFAULT 0,
    not_found_since   timestamptz,
    PRIMARY KEY (provider, user_id)
);
CREATE INDEX targets_due_idx ON syncd.targets (provider, next_sync_at);
CREATE INDEX targets_lease_idx ON syncd.targets (leased_by) WHERE leased_by IS NOT NULL;

-- shared by every replica: a Retry-After pause applies to all of them
CREATE TABLE syncd.provider_state (
    provider      text        PRIMARY KEY,
    paused_until  timestamptz,
    pause_reason  text,
    circuit       text        NOT NULL DEFAULT 'closed',
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE syncd.sync_runs (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider     text        NOT NULL,
    trigger      text        NOT NULL CHECK (trigger IN ('schedule', 'resync', 'demo', 'cron')),
    replica      text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text        NOT NULL DEFAULT 'running',
    fetched      integer     NOT NULL DEFAULT 0,
    created      integer     NOT NULL DEFAULT 0,
    updated      integer     NOT NULL DEFAULT 0,
    deleted      integer     NOT NULL DEFAULT 0,
    restored     integer     NOT NULL DEFAULT 0,
    unchanged    integer     NOT NULL DEFAULT 0,
    failed       integer     NOT NULL DEFAULT 0,
    not_found    integer     NOT NULL DEFAULT 0,
    held         integer     NOT NULL DEFAULT 0,
    error        text
);
CREATE INDEX sync_runs_provider_idx ON syncd.sync_runs (provider, started_at DESC);

-- deletions held by the mass-deletion guard until an admin approves or rejects
CREATE TABLE syncd.pending_deletions (
    provider     text        NOT NULL,
    user_id      text        NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now(),
    run_id       bigint,
    PRIMARY KEY (provider, user_id)
);
