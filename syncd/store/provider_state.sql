-- syncd's SQL for provider state (besides the migrations in sql/), loaded once by name.
-- Each block: "-- name: <name>" then a description line giving the order of
-- the positional parameters (the typed method in provider_state.py names them).

-- name: get_pause
-- $1 provider
SELECT paused_until, pause_reason, updated_at FROM syncd.provider_state WHERE provider = $1;

-- name: set_pause
-- $1 provider, $2 paused until, $3 reason
-- Only ever extends a pause; tells the other replicas at once.
WITH up AS (
    INSERT INTO syncd.provider_state AS s (provider, paused_until, pause_reason)
    VALUES ($1, $2, $3)
    ON CONFLICT (provider) DO UPDATE SET
        paused_until = greatest(s.paused_until, EXCLUDED.paused_until),
        pause_reason = EXCLUDED.pause_reason, updated_at = now()
    RETURNING provider, paused_until
)
SELECT pg_notify('syncd_provider_state', provider || ' ' || extract(epoch FROM paused_until)::text)
FROM up;

-- name: clear_pause
-- $1 provider, $2 the reason that marks a cleared pause
-- End a provider's pause for every replica; each re-reads provider_state on
-- the NOTIFY (a hint only: the row is the truth) and drops its own pause.
WITH old AS (
    SELECT paused_until FROM syncd.provider_state WHERE provider = $1
), up AS (
    INSERT INTO syncd.provider_state AS s (provider, paused_until, pause_reason)
    VALUES ($1, NULL, $2)
    ON CONFLICT (provider) DO UPDATE SET paused_until = NULL, pause_reason = $2, updated_at = now()
    RETURNING provider
)
SELECT (SELECT paused_until FROM old) AS was_until, pg_notify('syncd_provider_state', up.provider)
FROM up;

-- name: set_circuit
-- $1 provider, $2 circuit state
INSERT INTO syncd.provider_state AS s (provider, circuit) VALUES ($1, $2)
ON CONFLICT (provider) DO UPDATE SET circuit = EXCLUDED.circuit, updated_at = now();
