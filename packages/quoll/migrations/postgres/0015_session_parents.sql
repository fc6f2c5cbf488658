-- The API token a console session or sign-in link was made from: the session stops working
-- once that token is revoked or expires (a run's token ends with its run). NULL for API tokens.
-- Sessions and links made before this column have no parent to check, so they end here: their
-- holders sign in again (same number in migrations/sqlite).
ALTER TABLE api_tokens ADD COLUMN parent_id TEXT COLLATE "C";
UPDATE api_tokens SET revoked_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  WHERE revoked_at IS NULL AND (left(subject, 16) = 'console-session:' OR left(subject, 13) = 'console-link:');
