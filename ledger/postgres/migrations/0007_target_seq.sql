-- A listing of one target's rows ordered by seq ("runs --target", and
-- the runs listing of a principal with roles on some targets only,
-- ledger.Filter.Targets, which the dashboard asks on every load): without
-- an index a target with few rows read the whole ledger for each page
-- (509 ms at 400k rows). (target, seq) gives the page in order, and the
-- OR of a principal's targets a bitmap OR of its ranges. Appends pay one
-- more index entry a row.
CREATE INDEX workload_runs_target_seq ON workload_runs (target, seq);
