-- 0006 replaced the (action, kind, target, seq) index by (action, seq).
-- On SQLite that made the halt read, which every mutating request does,
-- group the halt rows in a temporary b-tree (~3x its time in
-- BenchmarkLedgerReads/halts) instead of reading them in target order, to
-- speed up a listing of one action ("runs --action"), which is rare. The
-- halt read matters more, and a second index would cost every append:
-- this restores the index of 0001. (PostgreSQL sorts the halt rows either
-- way and keeps 0006.)
DROP INDEX workload_runs_action_seq;
CREATE INDEX workload_runs_action ON workload_runs (action, kind, target, seq);
