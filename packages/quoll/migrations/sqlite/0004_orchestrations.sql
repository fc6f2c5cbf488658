-- Orchestrations: uploaded zips and their packaging state.
-- No foreign keys to other tables on purpose: the orchestration store is tested with this
-- migration alone, and workspace existence is checked by the service before insert.
CREATE TABLE orchestrations (
  id TEXT PRIMARY KEY,
  workspace_id INTEGER NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  file_name TEXT NOT NULL,
  sha TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending_packaging', 'packaging', 'ready', 'error')),
  error TEXT,
  entrypoint TEXT,
  dep_hash TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE INDEX orchestrations_by_workspace ON orchestrations (workspace_id, created_at);
CREATE INDEX orchestrations_by_status ON orchestrations (status, created_at);

-- What packaging printed (npm, esbuild and Quoll's own steps), in order per orchestration.
CREATE TABLE orchestration_packaging_logs (
  orchestration_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time TEXT NOT NULL,
  source TEXT NOT NULL CHECK (source IN ('quoll', 'npm', 'esbuild')),
  line TEXT NOT NULL,
  PRIMARY KEY (orchestration_id, seq)
) WITHOUT ROWID;
