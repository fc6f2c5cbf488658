-- A cluster's inference log batches (0013) in partitions, a few per pipeline, so that a
-- pipeline at its byte cap gives up its oldest batches a partition at a time (`TRUNCATE` of
-- that partition: no row deleted one by one, nothing left for a vacuum) and a page read plans
-- and locks the one or two partitions its `seq` window falls in.
--
-- `inference_log_batches` is partitioned by range of `(pipeline_id, seq)`: each partition is a
-- run of one pipeline's sequence numbers. The writer creates them under the pipeline's head
-- (a table made apart, then attached: an attach does not stop other sessions' inserts or
-- reads) before its numbers reach them, and lists them here.
CREATE TABLE inference_log_partitions (
  name         TEXT COLLATE "C" PRIMARY KEY,  -- the partition's table
  pipeline_id  INTEGER NOT NULL,
  first_seq    BIGINT NOT NULL,               -- its range: first_seq <= seq < end_seq
  end_seq      BIGINT NOT NULL,
  -- Its rows are gone (truncated, or every one trimmed): it is detached and dropped beside
  -- the writes (`DETACH PARTITION … CONCURRENTLY`), then this row is deleted.
  emptied      BOOLEAN NOT NULL DEFAULT false,
  UNIQUE (pipeline_id, first_seq)
);

-- The oldest stored seq of a pipeline (retention moves it), so that a read from the start
-- knows which partition to plan for.
ALTER TABLE inference_log_heads ADD COLUMN first_seq BIGINT NOT NULL DEFAULT 1;
-- When its oldest stored batch was written (`created_at`; null: none yet), so that retention
-- over the total cap finds the pipeline holding the oldest batches from the heads alone: a
-- query over the batches table without a pipeline locks every partition of every pipeline.
ALTER TABLE inference_log_heads ADD COLUMN oldest_at BIGINT;

ALTER TABLE inference_log_batches RENAME TO inference_log_batches_0013;
ALTER TABLE inference_log_batches_0013 RENAME CONSTRAINT inference_log_batches_pkey TO inference_log_batches_0013_pkey;
DROP INDEX inference_log_batches_by_max_time;
DROP INDEX inference_log_batches_by_min_time;
DROP INDEX inference_log_batches_by_age;

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
) PARTITION BY RANGE (pipeline_id, seq);
-- Arrow buffers compress poorly and pglz is slow: stored as they are (partitions made
-- `LIKE` this table `INCLUDING ALL` inherit it).
ALTER TABLE inference_log_batches ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX inference_log_batches_by_max_time ON inference_log_batches (pipeline_id, max_time, seq);
CREATE INDEX inference_log_batches_by_min_time ON inference_log_batches (pipeline_id, min_time, seq);
CREATE INDEX inference_log_batches_by_age ON inference_log_batches (created_at);

-- An existing log moves into partitions: one per pipeline, its stored seqs up to its head
-- (the writer makes the next ones, an eighth of the cap each, as its seqs reach them; the
-- first is dropped whole once every row in it is trimmed). One, not eight: each partition made
-- in this transaction holds about seven locks (table, TOAST table and index, primary key, three
-- indexes) until it commits, and the server's lock table (max_locks_per_transaction × connections,
-- 6400 at the defaults) would not hold eight per pipeline for a few hundred pipelines. One per
-- pipeline fits about 900 pipelines at the defaults; a cluster with more raises
-- max_locks_per_transaction for the upgrade (docs/distributed.md).
DO $$
DECLARE
  p RECORD;
  part TEXT;
BEGIN
  FOR p IN
    SELECT h.pipeline_id, min(b.seq) AS first_seq, h.next_seq, min(b.created_at) AS oldest_at
      FROM inference_log_heads h JOIN inference_log_batches_0013 b USING (pipeline_id)
     GROUP BY h.pipeline_id, h.next_seq ORDER BY h.pipeline_id
  LOOP
    part := format('inference_log_batches_p%s_s%s', p.pipeline_id, p.first_seq);
    EXECUTE format('CREATE TABLE %I (LIKE inference_log_batches INCLUDING ALL)', part);
    EXECUTE format('ALTER TABLE inference_log_batches ATTACH PARTITION %I FOR VALUES FROM (%s, %s) TO (%s, %s)',
                   part, p.pipeline_id, p.first_seq, p.pipeline_id, p.next_seq);
    INSERT INTO inference_log_partitions (name, pipeline_id, first_seq, end_seq)
      VALUES (part, p.pipeline_id, p.first_seq, p.next_seq);
    UPDATE inference_log_heads SET first_seq = p.first_seq, oldest_at = p.oldest_at
     WHERE pipeline_id = p.pipeline_id;
  END LOOP;
END
$$;
INSERT INTO inference_log_batches SELECT * FROM inference_log_batches_0013;
DROP TABLE inference_log_batches_0013;
