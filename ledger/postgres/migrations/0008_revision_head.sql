-- The service's revision head (ledger.RevisionHead, and the guard of every
-- result append that records a revision: revisionHeadsSQL): its newest
-- successful result of a revision-recording action. Through the indexes
-- on (service, seq) or (target, seq) the planner read all of the
-- service's rows and sorted them (a bitmap scan: 4.8 ms at 3,600 rows of
-- one service, growing with the ledger, paid by every scale's result).
-- This partial index holds those rows only, so the newest is one probe
-- (an index-only scan backward, LIMIT 1); appends of other rows do not
-- pay for it. The predicate is ledger.RevisionHeadSQL's condition.
CREATE INDEX workload_runs_revision_head ON workload_runs (service, target, seq)
    WHERE kind = 'result' AND outcome = 'ok' AND action IN ('start', 'scale', 'apply_config', 'rollback');
