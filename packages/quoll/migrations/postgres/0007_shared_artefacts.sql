-- What every node of a cluster shares besides metadata (same number in migrations/sqlite).

-- Proof of the master key: sealed by the first node with its key; a node whose key does not
-- open it refuses to start (its connections could not be read).
CREATE TABLE key_checks (
  name        TEXT COLLATE "C" PRIMARY KEY,
  key_id      TEXT NOT NULL,
  sealed      BYTEA NOT NULL,
  created_at  TEXT NOT NULL
);

-- Artefacts by content: model files, orchestration archives. A `blobs` row is written in the
-- same transaction as its chunks, so a row means the blob is complete.
CREATE TABLE blobs (
  sha          TEXT COLLATE "C" PRIMARY KEY,
  size         BIGINT NOT NULL,
  chunk_bytes  INTEGER NOT NULL,
  created_at   TEXT NOT NULL
);
CREATE TABLE blob_chunks (
  sha   TEXT COLLATE "C" NOT NULL REFERENCES blobs(sha) ON DELETE CASCADE,
  idx   INTEGER NOT NULL,
  data  BYTEA NOT NULL,
  PRIMARY KEY (sha, idx)
);

-- Task-run logs, readable and followable from every node (writes NOTIFY quoll_run_log).
-- Addressed by run id alone, as the run-log files of an embedded home are (no foreign key).
CREATE TABLE task_run_log_lines (
  run_id  TEXT COLLATE "C" NOT NULL,
  seq     BIGINT NOT NULL,
  time    TEXT NOT NULL,
  stream  TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
  line    TEXT NOT NULL,
  quoll   BOOLEAN NOT NULL DEFAULT FALSE,
  final   BOOLEAN NOT NULL DEFAULT FALSE,
  PRIMARY KEY (run_id, seq)
);
