import Database from 'better-sqlite3';
import { migrationsDir, pendingMigrations, readMigrations } from '../schema-migrations.js';

/** The better-sqlite3 handle type, kept inside the store folder. */
export type SqliteHandle = Database.Database;

/** Where SQLite's numbered plain-SQL migrations live (`migrations/sqlite/0001_core.sql` …). */
export const MIGRATIONS_DIR = migrationsDir('sqlite');

/**
 * Opens (creating if needed) the SQLite metadata database and applies every numbered
 * migration not yet applied, each in its own transaction. A database migrated by a newer
 * Quoll is refused (`SchemaTooNewError`) before anything is written.
 *
 * WAL mode lets readers run while the single writer commits; `synchronous=NORMAL` is
 * durable across process crashes (not power loss), which is what the embedded default promises.
 */
export function openSqliteDatabase(path: string, migrationsDirectory: string = MIGRATIONS_DIR): SqliteHandle {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    applyMigrations(db, migrationsDirectory, path);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/**
 * Applies, in order, the migrations not yet applied. `BEGIN IMMEDIATE` takes the write lock
 * before reading which are applied, so two processes opening one file migrate it once.
 */
export function applyMigrations(
  db: SqliteHandle,
  migrationsDirectory: string,
  where = 'this file',
): number[] {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
  );
  const files = readMigrations(migrationsDirectory);
  const done: number[] = [];
  db.transaction(() => {
    const applied = new Set(
      (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
    for (const m of pendingMigrations(files, applied, where)) {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        new Date().toISOString(),
      );
      done.push(m.version);
    }
  }).immediate();
  return done;
}
