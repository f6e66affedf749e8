-- The reads a controller does routinely cost what they return, not the
-- size of the ledger (see BenchmarkLedgerReads). Refused requests and runs
-- that did not end ok are rare, and what an operator lists the runs for
-- ("runs --outcome interrupted", the rejected rows): without an index each
-- such listing read the whole ledger. These indexes hold those rows only,
-- so appends of ok runs do not pay for them. SQLite uses a partial index
-- when a query repeats its condition (ledger.Filter.SelectSQL does).
CREATE INDEX workload_runs_unusual_kind ON workload_runs (kind, seq) WHERE kind = 'rejected' OR outcome NOT IN ('', 'ok');
CREATE INDEX workload_runs_unusual_outcome ON workload_runs (outcome, seq) WHERE kind = 'rejected' OR outcome NOT IN ('', 'ok');
