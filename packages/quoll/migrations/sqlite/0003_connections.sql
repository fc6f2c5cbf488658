-- Connections: named, typed sets of details sealed with the master key (never stored in clear),
-- their attachments to workspaces, and an audit trail of who read unmasked details.

CREATE TABLE connections (
  id              TEXT PRIMARY KEY,
  name            TEXT NOT NULL UNIQUE,
  type            TEXT NOT NULL,
  -- Which master key sealed the details, so rotation can tell old rows from new.
  key_id          TEXT NOT NULL,
  -- version byte | 12-byte IV | 16-byte GCM tag | ciphertext (AES-256-GCM, AAD = connection id).
  sealed_details  BLOB NOT NULL,
  created_at      TEXT NOT NULL
);
CREATE INDEX connections_by_key ON connections (key_id);

CREATE TABLE connection_workspaces (
  connection_id  TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
  workspace_id   INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  attached_at    TEXT NOT NULL,
  PRIMARY KEY (connection_id, workspace_id)
) WITHOUT ROWID;
CREATE INDEX connection_workspaces_by_workspace ON connection_workspaces (workspace_id, connection_id);

-- No foreign key: the audit trail outlives the connection it mentions.
CREATE TABLE connection_audit (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  at               TEXT NOT NULL,
  subject          TEXT NOT NULL,
  connection_id    TEXT NOT NULL,
  connection_name  TEXT NOT NULL,
  action           TEXT NOT NULL
);
