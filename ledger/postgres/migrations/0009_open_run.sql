-- The fence's open-run read (fence.go openRunSQL: a service's newest
-- intent other than exec's, read whenever a service lock is taken afresh):
-- through (service, seq) or (target, seq) the planner scanned and sorted
-- every row of the service while the table's statistics were young (4.1 ms
-- at 3,000 rows, growing with the ledger), and with statistics walked the
-- primary key back from the head, past every other service's rows (the
-- whole ledger for a service idle since long ago). This partial index
-- holds those intents only: the newest is one probe. Its predicate is
-- implied by openRunSQL's condition.
CREATE INDEX workload_runs_open_run ON workload_runs (service, target, seq)
    WHERE kind = 'intent' AND action <> 'exec';
