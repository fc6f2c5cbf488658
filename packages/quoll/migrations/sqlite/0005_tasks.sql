-- Tasks (an orchestration run once, on a cron schedule or continuously), their runs and
-- the cron ticks that produced no run. orchestration_id / workspace_id are plain columns
-- (no foreign keys to 0001/0004) so this table set stands on its own.
-- Times are RFC 3339 UTC strings; ticks are epoch milliseconds.
CREATE TABLE tasks (
  id                TEXT PRIMARY KEY,
  name              TEXT NOT NULL,
  type              TEXT NOT NULL CHECK (type IN ('Temporary Run', 'Scheduled Run', 'Continuous Run')),
  status            TEXT NOT NULL CHECK (status IN ('pending', 'started', 'pending_kill', 'killed')),
  orchestration_id  TEXT NOT NULL,
  workspace_id      INTEGER NOT NULL,
  schedule          TEXT,
  timezone          TEXT,
  json_args         TEXT NOT NULL DEFAULT '{}',
  timeout_seconds   INTEGER,
  killed            INTEGER NOT NULL DEFAULT 0,
  status_reason     TEXT,
  last_tick         INTEGER,
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL,
  CHECK ((type = 'Scheduled Run') = (schedule IS NOT NULL))
);
CREATE INDEX tasks_by_workspace ON tasks (workspace_id, created_at);
CREATE INDEX tasks_by_orchestration ON tasks (orchestration_id, created_at);

CREATE TABLE task_runs (
  id          TEXT PRIMARY KEY,
  task_id     TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  -- Nominal cron tick; NULL for run-once and continuous runs.
  tick        INTEGER,
  status      TEXT NOT NULL CHECK (status IN ('running', 'success', 'failure', 'timed_out', 'killed')),
  exit_code   INTEGER,
  reason      TEXT,
  pid         INTEGER,
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  -- A cron tick creates at most one run, ever (restarts and re-registrations included).
  UNIQUE (task_id, tick)
);
CREATE INDEX task_runs_by_task ON task_runs (task_id, created_at);
CREATE INDEX task_runs_running ON task_runs (task_id) WHERE status = 'running';

CREATE TABLE task_ticks (
  task_id      TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  tick         INTEGER NOT NULL,
  kind         TEXT NOT NULL CHECK (kind IN ('skipped', 'missed')),
  reason       TEXT NOT NULL,
  recorded_at  TEXT NOT NULL,
  PRIMARY KEY (task_id, tick)
);
