-- 0006 replaced the (action, kind, target, seq) index by (action, seq).
-- This undid it, on a measurement of the halt read (which every mutating
-- request does) that was noise: with 0006 SQLite groups the few halt rows
-- in a temporary b-tree instead of reading them in target order, and a
-- later paired measurement (3000 reads of each plan, alternately, on a
-- 200k-row ledger) found no difference (1.01x). 0008 applies 0006 again.
DROP INDEX workload_runs_action_seq;
CREATE INDEX workload_runs_action ON workload_runs (action, kind, target, seq);
