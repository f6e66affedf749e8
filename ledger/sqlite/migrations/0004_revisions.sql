-- Spec revisions (ledger.Revision): one row per successful start, scale,
-- apply_config or rollback, keyed by its run. The run's result row in
-- workload_runs carries the revision number and digest, so this table is
-- checked against the hash chain, never trusted alone. Env and config
-- values are never stored in the clear: spec has them removed, sealed holds
-- them encrypted (AES-256-GCM, package control). Append-only like
-- workload_runs.
CREATE TABLE workload_revisions (
    run_id   TEXT    PRIMARY KEY,
    target   TEXT    NOT NULL,
    service  TEXT    NOT NULL,
    revision INTEGER NOT NULL,
    spec     TEXT    NOT NULL,
    sealed   BLOB,
    digest   TEXT    NOT NULL,
    time_ns  INTEGER NOT NULL
);
CREATE INDEX workload_revisions_service ON workload_revisions (target, service, revision);
CREATE TRIGGER workload_revisions_no_update BEFORE UPDATE ON workload_revisions
BEGIN SELECT RAISE(ABORT, 'workload_revisions is append-only'); END;
CREATE TRIGGER workload_revisions_no_delete BEFORE DELETE ON workload_revisions
BEGIN SELECT RAISE(ABORT, 'workload_revisions is append-only'); END;
