-- Inference log segments (as in migrations/sqlite/0002_inference_logs.sql): one row per
-- segment of a pipeline's log, with its time range, so a query visits only the segments it
-- needs and retention finds the oldest. No foreign key to pipelines on purpose: logs may
-- outlive a pipeline row until retention removes them.
CREATE TABLE inference_log_segments (
  pipeline_id  INTEGER NOT NULL,
  seq          INTEGER NOT NULL,
  schema_id    TEXT NOT NULL,
  rows         BIGINT NOT NULL DEFAULT 0,
  bytes        BIGINT NOT NULL DEFAULT 0,
  min_time     BIGINT,            -- epoch ms of the first row; NULL while the segment is empty
  max_time     BIGINT,            -- epoch ms of the last row
  sealed       BOOLEAN NOT NULL DEFAULT FALSE,
  created_at   BIGINT NOT NULL,   -- epoch ms
  PRIMARY KEY (pipeline_id, seq)
);

CREATE INDEX inference_log_segments_by_time ON inference_log_segments (pipeline_id, max_time);
CREATE INDEX inference_log_segments_unsealed ON inference_log_segments (sealed) WHERE NOT sealed;
