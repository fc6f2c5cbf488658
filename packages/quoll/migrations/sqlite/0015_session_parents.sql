-- The API token a console session or sign-in link was made from: the session stops working
-- once that token is revoked or expires (a run's token ends with its run). NULL for API tokens.
-- Sessions and links made before this column have no parent to check, so they end here: their
-- holders sign in again (same number in migrations/postgres).
ALTER TABLE api_tokens ADD COLUMN parent_id TEXT;
UPDATE api_tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
  WHERE revoked_at IS NULL AND (substr(subject, 1, 16) = 'console-session:' OR substr(subject, 1, 13) = 'console-link:');
