CREATE TABLE workload_runs (
    seq             INTEGER PRIMARY KEY,
    run_id          TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    service         TEXT    NOT NULL,
    provider        TEXT    NOT NULL,
    request_digest  TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    error_code      TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    detail          TEXT    NOT NULL,
    duration_ns     INTEGER NOT NULL,
    time_ns         INTEGER NOT NULL,
    prev_hash       TEXT    NOT NULL,
    hash            TEXT    NOT NULL
);
CREATE INDEX workload_runs_run_id ON workload_runs (run_id);
CREATE INDEX workload_runs_idempotency ON workload_runs (idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX workload_runs_service ON workload_runs (service, seq);
CREATE INDEX workload_runs_action ON workload_runs (action, kind, target, seq);
CREATE INDEX workload_runs_time ON workload_runs (time_ns);
CREATE TRIGGER workload_runs_no_update BEFORE UPDATE ON workload_runs
BEGIN SELECT RAISE(ABORT, 'workload_runs is append-only'); END;
CREATE TRIGGER workload_runs_no_delete BEFORE DELETE ON workload_runs
BEGIN SELECT RAISE(ABORT, 'workload_runs is append-only'); END;
