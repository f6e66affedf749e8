-- A listing of one action ("runs --action scale") ordered by seq: the index
-- of 0001 on (action, kind, target, seq) gave SQLite every row of the
-- action to sort for one page (~0.3 s for a common action at 200k rows).
-- (action, seq) gives the page in order, and the halt reads (action
-- 'halt': few rows, filtered on kind, outcome and target) stay indexed.
-- One index replaces the other: appends pay the same.
DROP INDEX workload_runs_action;
CREATE INDEX workload_runs_action_seq ON workload_runs (action, seq);
