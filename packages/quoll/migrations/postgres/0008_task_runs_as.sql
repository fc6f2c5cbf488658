-- Whose rights a task's runs act with: the creator's kind of token. 'admin' runs get an
-- admin token (they see every workspace's connections, as the admin who created the task);
-- 'workspace' runs a token bounded to the task's workspace. Tasks created before this
-- column get the narrower one, as their runs did (same number in migrations/sqlite).
ALTER TABLE tasks ADD COLUMN runs_as TEXT NOT NULL DEFAULT 'workspace' CHECK (runs_as IN ('admin', 'workspace'));
