-- workload_runs: the append-only, sha256 hash-chained audit ledger.
-- Every column of ledger.Record; time and duration are stored as int64
-- nanoseconds and detail as text (not jsonb), so that a row read back
-- hashes to exactly what was sealed.
CREATE TABLE workload_runs (
    seq             bigint PRIMARY KEY CHECK (seq > 0),
    run_id          text   NOT NULL,
    kind            text   NOT NULL,
    user_id         text   NOT NULL,
    action          text   NOT NULL,
    target          text   NOT NULL,
    service         text   NOT NULL,
    provider        text   NOT NULL,
    request_digest  text   NOT NULL,
    idempotency_key text   NOT NULL,
    outcome         text   NOT NULL,
    error_code      text   NOT NULL,
    message         text   NOT NULL,
    detail          text   NOT NULL,
    duration_ns     bigint NOT NULL,
    time_ns         bigint NOT NULL,
    prev_hash       text   NOT NULL,
    hash            text   NOT NULL
);

CREATE INDEX workload_runs_run_id ON workload_runs (run_id);
CREATE INDEX workload_runs_idempotency_key ON workload_runs (idempotency_key);
CREATE INDEX workload_runs_service_seq ON workload_runs (service, seq);
CREATE INDEX workload_runs_action_kind_target_seq ON workload_runs (action, kind, target, seq);

-- Append-only: any UPDATE, DELETE or TRUNCATE statement is refused.
CREATE FUNCTION workload_runs_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'workload_runs is append-only: % refused', TG_OP
        USING HINT = 'the audit ledger can only be appended to';
END
$$;

CREATE TRIGGER workload_runs_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON workload_runs
    FOR EACH STATEMENT EXECUTE FUNCTION workload_runs_append_only();

-- One chain: a new row must follow the current last row, with the next seq
-- and that row's hash as its prev_hash (the genesis hash for row 1). With
-- the primary key this keeps the ledger one line whoever writes to it.
CREATE FUNCTION workload_runs_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head_seq  bigint;
    head_hash text;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash
        FROM workload_runs ORDER BY seq DESC LIMIT 1;
    IF head_seq IS NULL THEN
        head_seq := 0;
        head_hash := repeat('0', 64);
    END IF;
    IF NEW.seq IS DISTINCT FROM head_seq + 1 OR NEW.prev_hash IS DISTINCT FROM head_hash THEN
        RAISE EXCEPTION 'workload_runs: row % does not extend the chain (the last row is %)', NEW.seq, head_seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER workload_runs_chain
    BEFORE INSERT ON workload_runs
    FOR EACH ROW EXECUTE FUNCTION workload_runs_chain();
