-- 0006 again (see 0007): a listing of one action ("runs --action scale")
-- gets its page in seq order from (action, seq) instead of sorting every
-- row of the action (~0.3 s for a common action at 200k rows, 1/60 of it
-- after). The halt read groups its few rows in a temporary b-tree: the
-- same time as with the old index (1.01x, 3000 paired reads). One index
-- replaces the other: appends pay the same.
DROP INDEX workload_runs_action;
CREATE INDEX workload_runs_action_seq ON workload_runs (action, seq);
