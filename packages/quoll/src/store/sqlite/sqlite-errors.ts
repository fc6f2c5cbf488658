/** Whether a better-sqlite3 error is a UNIQUE (or PRIMARY KEY) constraint violation. */
export function isUniqueViolation(err: unknown): boolean {
  return (
    typeof err === 'object' &&
    err !== null &&
    'code' in err &&
    (err.code === 'SQLITE_CONSTRAINT_UNIQUE' || err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
  );
}

/** Whether a better-sqlite3 error is a FOREIGN KEY constraint violation. */
export function isForeignKeyViolation(err: unknown): boolean {
  return (
    typeof err === 'object' && err !== null && 'code' in err && err.code === 'SQLITE_CONSTRAINT_FOREIGNKEY'
  );
}
