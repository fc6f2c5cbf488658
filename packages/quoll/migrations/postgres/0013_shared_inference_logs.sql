-- Inference logs of a cluster, readable by every node, and the record of a home migrated into
-- the database (migrations/sqlite has this number
-- without tables: an embedded home keeps its segment files, see 0002).
--
-- A pipeline's log is a sequence of Arrow record batches, numbered by `seq` in the order they
-- were stored. The node that stores batches holds the pipeline's head row (FOR UPDATE) and
-- raises times below the head's `last_time` to it, so `time` is non-decreasing along `seq`
-- over the whole cluster, as it is along an embedded home's segments: queries find a time
-- range's first batch by index and read on in `seq` order.
CREATE TABLE inference_log_heads (
  pipeline_id  INTEGER PRIMARY KEY,
  next_seq     BIGINT NOT NULL,
  last_time    BIGINT,            -- epoch ms of the newest row; NULL before the first
  rows         BIGINT NOT NULL DEFAULT 0,
  bytes        BIGINT NOT NULL DEFAULT 0
);

-- The schema message of every schema a batch uses, by schema id (see schemaIdOf).
CREATE TABLE inference_log_schemas (
  schema_id  TEXT COLLATE "C" PRIMARY KEY,
  message    BYTEA NOT NULL
);

-- One Arrow IPC record-batch message per row (without its schema message), with its time range.
CREATE TABLE inference_log_batches (
  pipeline_id  INTEGER NOT NULL,
  seq          BIGINT NOT NULL,
  schema_id    TEXT COLLATE "C" NOT NULL,
  rows         INTEGER NOT NULL,
  bytes        INTEGER NOT NULL,
  min_time     BIGINT NOT NULL,
  max_time     BIGINT NOT NULL,
  node_id      TEXT NOT NULL,
  created_at   BIGINT NOT NULL,
  data         BYTEA NOT NULL,
  PRIMARY KEY (pipeline_id, seq)
);
-- Arrow buffers compress poorly and pglz is slow: stored as they are.
ALTER TABLE inference_log_batches ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX inference_log_batches_by_max_time ON inference_log_batches (pipeline_id, max_time, seq);
CREATE INDEX inference_log_batches_by_min_time ON inference_log_batches (pipeline_id, min_time, seq);
CREATE INDEX inference_log_batches_by_age ON inference_log_batches (created_at);

-- `quoll admin migrate --from-home`: which home this database was filled from, and the steps
-- of that copy already committed (a re-run after an interruption skips them).
CREATE TABLE home_migrations (
  source       TEXT COLLATE "C" PRIMARY KEY,
  started_at   TEXT NOT NULL,
  finished_at  TEXT
);
CREATE TABLE home_migration_steps (
  source   TEXT COLLATE "C" NOT NULL REFERENCES home_migrations(source),
  step     TEXT COLLATE "C" NOT NULL,
  done_at  TEXT NOT NULL,
  PRIMARY KEY (source, step)
);
