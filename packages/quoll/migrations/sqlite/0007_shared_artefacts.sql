-- Shared artefacts (same number in migrations/postgres). The embedded home keeps model files,
-- orchestration archives and task-run logs as files under the home, so of that migration's
-- tables only the master-key check exists here (its store is part of the one contract; the
-- embedded server does not need the check, as its key sits beside its database).
CREATE TABLE key_checks (
  name        TEXT PRIMARY KEY,
  key_id      TEXT NOT NULL,
  sealed      BLOB NOT NULL,
  created_at  TEXT NOT NULL
);
