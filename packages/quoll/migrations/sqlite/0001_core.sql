-- Core metadata: workspaces, API tokens, models, pipelines and their deployments.
CREATE TABLE workspaces (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  name        TEXT NOT NULL UNIQUE,
  created_at  TEXT NOT NULL,
  is_default  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE api_tokens (
  id            TEXT PRIMARY KEY,
  token_hash    TEXT NOT NULL UNIQUE,
  kind          TEXT NOT NULL CHECK (kind IN ('admin', 'workspace')),
  workspace_id  INTEGER REFERENCES workspaces(id) ON DELETE CASCADE,
  subject       TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  expires_at    TEXT,
  revoked_at    TEXT,
  CHECK ((kind = 'admin') = (workspace_id IS NULL))
);

CREATE TABLE models (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  workspace_id  INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name          TEXT NOT NULL,
  version       TEXT NOT NULL UNIQUE,
  sha           TEXT NOT NULL,
  file_name     TEXT NOT NULL,
  size_bytes    INTEGER NOT NULL,
  framework     TEXT NOT NULL DEFAULT 'onnx',
  inputs_json   TEXT NOT NULL,
  outputs_json  TEXT NOT NULL,
  config_json   TEXT NOT NULL,
  created_at    TEXT NOT NULL
);
CREATE INDEX models_by_name ON models (workspace_id, name, id);

CREATE TABLE pipelines (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  workspace_id  INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name          TEXT NOT NULL,
  steps_json    TEXT NOT NULL DEFAULT '[]',
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL,
  UNIQUE (workspace_id, name)
);

CREATE TABLE pipeline_versions (
  version       TEXT PRIMARY KEY,
  pipeline_id   INTEGER NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
  steps_json    TEXT NOT NULL,
  created_at    TEXT NOT NULL
);
CREATE INDEX pipeline_versions_by_pipeline ON pipeline_versions (pipeline_id, created_at);

-- The desired deployment of a pipeline; the server re-deploys these rows when it starts.
CREATE TABLE deployments (
  pipeline_id   INTEGER PRIMARY KEY REFERENCES pipelines(id) ON DELETE CASCADE,
  version       TEXT NOT NULL REFERENCES pipeline_versions(version),
  config_json   TEXT NOT NULL,
  deployed_at   TEXT NOT NULL
);
