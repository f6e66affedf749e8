-- Version 2 of the canonical encoding: how the principal authenticated
-- (auth) and its display name (user_name) are recorded and hashed. Rows
-- that exist already were sealed as version 1 and keep that version.
ALTER TABLE workload_runs ADD COLUMN auth TEXT NOT NULL DEFAULT '';
ALTER TABLE workload_runs ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE workload_runs ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
CREATE INDEX workload_runs_user_id ON workload_runs (user_id, seq);
CREATE INDEX workload_runs_user_name ON workload_runs (user_name, seq) WHERE user_name <> '';
