-- A task's own resource limits for its runs, as JSON ({"memoryBytes", "processes",
-- "openFiles", "cpuSeconds"}, each optional and no looser than the server's); '{}' = the
-- server's limits, as every task had before this column (same number in migrations/sqlite).
ALTER TABLE tasks ADD COLUMN limits_json TEXT NOT NULL DEFAULT '{}';
