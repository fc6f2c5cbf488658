-- Rules of the schema that several nodes rely on (same number in migrations/sqlite).

-- Exactly one default workspace (nodes starting together cannot create two).
CREATE UNIQUE INDEX workspaces_one_default ON workspaces (is_default) WHERE is_default;

-- At most one running run per task.
DROP INDEX task_runs_running;
CREATE UNIQUE INDEX task_runs_one_running ON task_runs (task_id) WHERE status = 'running';

-- A packaging job is leased: who packages it and until when (epoch ms). A job whose lease
-- ended is taken over by the next claim (FOR UPDATE SKIP LOCKED).
ALTER TABLE orchestrations ADD COLUMN lease_owner TEXT;
ALTER TABLE orchestrations ADD COLUMN lease_until BIGINT;
