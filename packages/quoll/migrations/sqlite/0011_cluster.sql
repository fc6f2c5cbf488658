-- The coordination of nodes on one database (same number in migrations/postgres). An embedded
-- home is a cluster of one node: the same rows, always held by that node.

CREATE TABLE cluster_nodes (
  id          TEXT PRIMARY KEY,
  url         TEXT NOT NULL,
  roles       TEXT NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('up', 'lost', 'stopped')),
  started_at  INTEGER NOT NULL,
  last_seen   INTEGER NOT NULL
) WITHOUT ROWID;

-- A running run's node and lease (epoch ms); NULL node = waiting to be claimed.
ALTER TABLE task_runs ADD COLUMN node_id TEXT;
ALTER TABLE task_runs ADD COLUMN lease_until INTEGER;
UPDATE task_runs SET node_id = '', lease_until = 0 WHERE status = 'running';
CREATE INDEX task_runs_unclaimed ON task_runs (created_at) WHERE status = 'running' AND node_id IS NULL;
CREATE INDEX task_runs_by_lease ON task_runs (lease_until) WHERE status = 'running';
