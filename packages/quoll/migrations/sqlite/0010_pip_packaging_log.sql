-- Python orchestrations: pip's output is a packaging-log source of its own. SQLite cannot change
-- a CHECK constraint in place, so the table is rebuilt with the wider one.
CREATE TABLE orchestration_packaging_logs_new (
  orchestration_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time TEXT NOT NULL,
  source TEXT NOT NULL CHECK (source IN ('quoll', 'npm', 'esbuild', 'pip')),
  line TEXT NOT NULL,
  PRIMARY KEY (orchestration_id, seq)
) WITHOUT ROWID;
INSERT INTO orchestration_packaging_logs_new (orchestration_id, seq, time, source, line)
  SELECT orchestration_id, seq, time, source, line FROM orchestration_packaging_logs;
DROP TABLE orchestration_packaging_logs;
ALTER TABLE orchestration_packaging_logs_new RENAME TO orchestration_packaging_logs;
