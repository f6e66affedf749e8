-- Version 3 of the canonical encoding: the digest of the policy bundle
-- (package policy) that allowed or refused the request is recorded and
-- hashed. Rows that exist already keep the version they were sealed with
-- (ADD COLUMN ... DEFAULT is not an UPDATE: the append-only trigger does
-- not fire).
ALTER TABLE workload_runs ADD COLUMN policy_digest text NOT NULL DEFAULT '';
