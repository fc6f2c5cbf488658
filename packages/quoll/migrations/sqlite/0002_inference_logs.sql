-- Inference log segments: one row per Arrow IPC stream file `<logs>/<pipeline_id>/<seq>.arrows`.
-- The rows themselves live in the files; this table lets a time-range query open only the
-- segments it needs and lets retention find the oldest ones. No foreign key to pipelines on
-- purpose: log files may outlive a pipeline row until retention removes them.
CREATE TABLE inference_log_segments (
  pipeline_id  INTEGER NOT NULL,
  seq          INTEGER NOT NULL,
  schema_id    TEXT NOT NULL,
  rows         INTEGER NOT NULL DEFAULT 0,
  bytes        INTEGER NOT NULL DEFAULT 0,
  min_time     INTEGER,           -- epoch ms of the first row; NULL while the segment is empty
  max_time     INTEGER,           -- epoch ms of the last row
  sealed       INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1)),
  created_at   INTEGER NOT NULL,  -- epoch ms
  PRIMARY KEY (pipeline_id, seq)
) WITHOUT ROWID;

CREATE INDEX inference_log_segments_by_time ON inference_log_segments (pipeline_id, max_time);
CREATE INDEX inference_log_segments_unsealed ON inference_log_segments (sealed) WHERE sealed = 0;
