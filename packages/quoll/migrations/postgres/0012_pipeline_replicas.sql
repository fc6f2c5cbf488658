-- Where each deployed pipeline is served on a cluster (PostgreSQL only: an embedded home is
-- one node, which serves every deployment).
--
-- A row says that node `node_id` holds a replica of the pipeline. Rows are written by the
-- placement (any node, in one transaction under an advisory lock): a deployment gets
-- `replicas` nodes (all inference nodes when its config names none), rows on nodes that are no
-- longer up are moved, and rows of undeployed pipelines removed. The node that holds a
-- replica reports its state in the same row (status, version, details, workers), which is
-- what status() shows for every node and what forwarding reads.
CREATE TABLE pipeline_replicas (
  pipeline_id   INTEGER NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
  node_id       TEXT COLLATE "C" NOT NULL,
  placed_at     BIGINT NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('Running', 'Starting', 'Error', 'Undeployed')),
  version       TEXT COLLATE "C",
  details_json  TEXT NOT NULL DEFAULT '[]',
  workers       INTEGER NOT NULL DEFAULT 0,
  updated_at    BIGINT NOT NULL,
  PRIMARY KEY (pipeline_id, node_id)
);
CREATE INDEX pipeline_replicas_by_node ON pipeline_replicas (node_id);
