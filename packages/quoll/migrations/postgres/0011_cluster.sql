-- The coordination of nodes on one database (same number in migrations/sqlite).

-- Every node registers itself and refreshes `last_seen` (epoch ms, the database's clock) with
-- each heartbeat; a node whose heartbeat is older than the cluster's timeout is marked `lost`
-- by any live node, one that shut down cleanly marks itself `stopped`.
CREATE TABLE cluster_nodes (
  id          TEXT COLLATE "C" PRIMARY KEY,
  url         TEXT NOT NULL,
  roles       TEXT NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('up', 'lost', 'stopped')),
  started_at  BIGINT NOT NULL,
  last_seen   BIGINT NOT NULL
);

-- A running run belongs to one node, which holds its lease (until `lease_until`, epoch ms of
-- the database's clock) and renews it while the run lives. NULL node: created by a node that
-- does not run tasks, waiting for a node to claim it (FOR UPDATE SKIP LOCKED). Runs left
-- running before this migration belong to nobody alive: their lease is over at once.
ALTER TABLE task_runs ADD COLUMN node_id TEXT COLLATE "C";
ALTER TABLE task_runs ADD COLUMN lease_until BIGINT;
UPDATE task_runs SET node_id = '', lease_until = 0 WHERE status = 'running';
CREATE INDEX task_runs_unclaimed ON task_runs (created_at) WHERE status = 'running' AND node_id IS NULL;
CREATE INDEX task_runs_by_lease ON task_runs (lease_until) WHERE status = 'running';
