-- A listing of one action ("runs --action scale") ordered by seq reads its
-- page from (action, seq) in order, as on SQLite (see its 0006); the halt
-- reads (action 'halt': few rows, filtered on kind, outcome and target)
-- stay indexed. One index replaces the other: appends pay the same.
DROP INDEX workload_runs_action_kind_target_seq;
CREATE INDEX workload_runs_action_seq ON workload_runs (action, seq);
