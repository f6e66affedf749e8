-- A listing of one target's rows ordered by seq ("runs --target", and the
-- runs listing of a principal with roles on some targets only,
-- ledger.Filter.Targets, which the dashboard asks on every load): without
-- an index a target with few rows read the whole ledger for each page
-- (252 ms at 400k rows). (target, seq) gives the page in order; an OR of
-- targets would sort every matching row with it, so Filter.SelectSQL gives
-- SQLite one UNION ALL branch per target. Appends pay one more index
-- entry a row.
CREATE INDEX workload_runs_target_seq ON workload_runs (target, seq);
-- What SQLite knows of the index without ANALYZE: a target holds many
-- rows (a tenth here; a ledger has a few targets). Without it SQLite rates
-- target = ? as selective as service = ? or kind = 'rejected' and took
-- (target, seq) for a service's reads — the revision head of the append's
-- guard among them, which would then walk the target's rows back to the
-- service's last change — and for a target's rare rows. ANALYZE of the
-- new index creates sqlite_stat1 when the file has none (it cannot be
-- created otherwise); its figures are replaced by the fixed ones, which
-- do not go stale as the ledger grows. A later ANALYZE replaces them with
-- measured ones, which say the same. ANALYZE sqlite_schema loads them.
ANALYZE workload_runs_target_seq;
DELETE FROM sqlite_stat1 WHERE idx = 'workload_runs_target_seq';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('workload_runs', 'workload_runs_target_seq', '1000000 100000 1');
ANALYZE sqlite_schema;
