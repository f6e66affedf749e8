-- Spec revisions (ledger.Revision): one row per successful start, scale,
-- apply_config or rollback, keyed by its run. The run's result row in
-- workload_runs carries the revision number and digest, so this table is
-- checked against the hash chain, never trusted alone. Env and config
-- values are never stored in the clear: spec has them removed, sealed holds
-- them encrypted (AES-256-GCM, package control; every replica on this
-- database needs the same key). Append-only like workload_runs.
CREATE TABLE workload_revisions (
    run_id   text    PRIMARY KEY,
    target   text    NOT NULL,
    service  text    NOT NULL,
    revision integer NOT NULL CHECK (revision > 0),
    spec     text    NOT NULL,
    sealed   bytea,
    digest   text    NOT NULL,
    time_ns  bigint  NOT NULL
);

CREATE INDEX workload_revisions_service ON workload_revisions (target, service, revision);

CREATE FUNCTION workload_revisions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'workload_revisions is append-only: % refused', TG_OP
        USING HINT = 'spec revisions can only be appended to';
END
$$;

CREATE TRIGGER workload_revisions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON workload_revisions
    FOR EACH STATEMENT EXECUTE FUNCTION workload_revisions_append_only();
