-- Version 2 of the canonical encoding: how the principal authenticated
-- (auth) and its display name (user_name) are recorded and hashed. Rows
-- that exist already were sealed as version 1 and keep that version
-- (ADD COLUMN ... DEFAULT is not an UPDATE: the append-only trigger does
-- not fire).
ALTER TABLE workload_runs
    ADD COLUMN auth      text    NOT NULL DEFAULT '',
    ADD COLUMN user_name text    NOT NULL DEFAULT '',
    ADD COLUMN version   integer NOT NULL DEFAULT 1 CHECK (version > 0);

CREATE INDEX workload_runs_user_id_seq ON workload_runs (user_id, seq);
CREATE INDEX workload_runs_user_name_seq ON workload_runs (user_name, seq) WHERE user_name <> '';
