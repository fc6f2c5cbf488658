-- Rules that used to rest on SQLite having one writer become rules of the schema, as they
-- are in PostgreSQL (same number there): a check-then-act in application code could not
-- hold them with several writers.

-- Exactly one default workspace (nodes starting together cannot create two).
CREATE UNIQUE INDEX workspaces_one_default ON workspaces (is_default) WHERE is_default = 1;

-- At most one running run per task.
DROP INDEX task_runs_running;
CREATE UNIQUE INDEX task_runs_one_running ON task_runs (task_id) WHERE status = 'running';

-- A packaging job is leased: who packages it and until when (epoch ms). A job whose lease
-- ended (or that has none, from before this migration) is taken over by the next claim.
ALTER TABLE orchestrations ADD COLUMN lease_owner TEXT;
ALTER TABLE orchestrations ADD COLUMN lease_until INTEGER;
