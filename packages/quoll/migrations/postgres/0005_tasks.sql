-- Tasks, their runs and the cron ticks that produced no run (as in
-- migrations/sqlite/0005_tasks.sql). Times are RFC 3339 UTC strings; ticks are epoch ms.
CREATE TABLE tasks (
  id                TEXT COLLATE "C" PRIMARY KEY,
  name              TEXT COLLATE "C" NOT NULL,
  type              TEXT NOT NULL CHECK (type IN ('Temporary Run', 'Scheduled Run', 'Continuous Run')),
  status            TEXT NOT NULL CHECK (status IN ('pending', 'started', 'pending_kill', 'killed')),
  orchestration_id  TEXT COLLATE "C" NOT NULL,
  workspace_id      INTEGER NOT NULL,
  schedule          TEXT,
  timezone          TEXT,
  json_args         TEXT NOT NULL DEFAULT '{}',
  timeout_seconds   INTEGER,
  killed            BOOLEAN NOT NULL DEFAULT FALSE,
  status_reason     TEXT,
  last_tick         BIGINT,
  created_at        TEXT COLLATE "C" NOT NULL,
  updated_at        TEXT COLLATE "C" NOT NULL,
  CHECK ((type = 'Scheduled Run') = (schedule IS NOT NULL))
);
CREATE INDEX tasks_by_workspace ON tasks (workspace_id, created_at);
CREATE INDEX tasks_by_orchestration ON tasks (orchestration_id, created_at);

CREATE TABLE task_runs (
  id          TEXT COLLATE "C" PRIMARY KEY,
  task_id     TEXT COLLATE "C" NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  -- Nominal cron tick; NULL for run-once and continuous runs.
  tick        BIGINT,
  status      TEXT NOT NULL CHECK (status IN ('running', 'success', 'failure', 'timed_out', 'killed')),
  exit_code   INTEGER,
  reason      TEXT,
  pid         INTEGER,
  created_at  TEXT COLLATE "C" NOT NULL,
  updated_at  TEXT COLLATE "C" NOT NULL,
  -- A cron tick creates at most one run, ever (restarts, re-registrations and other nodes included).
  UNIQUE (task_id, tick)
);
CREATE INDEX task_runs_by_task ON task_runs (task_id, created_at);
CREATE INDEX task_runs_running ON task_runs (task_id) WHERE status = 'running';

CREATE TABLE task_ticks (
  task_id      TEXT COLLATE "C" NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  tick         BIGINT NOT NULL,
  kind         TEXT NOT NULL CHECK (kind IN ('skipped', 'missed')),
  reason       TEXT NOT NULL,
  recorded_at  TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (task_id, tick)
);
