import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

/** The better-sqlite3 handle type, kept inside the store folder. */
export type SqliteHandle = Database.Database;

/** Where the numbered plain-SQL migrations live (`migrations/0001_core.sql` …). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));

/**
 * Opens (creating if needed) the SQLite metadata database and applies every numbered
 * migration not yet applied, each in its own transaction.
 *
 * WAL mode lets readers run while the single writer commits; `synchronous=NORMAL` is
 * durable across process crashes (not power loss), which is what the embedded default promises.
 */
export function openSqliteDatabase(path: string, migrationsDir: string = MIGRATIONS_DIR): SqliteHandle {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  applyMigrations(db, migrationsDir);
  return db;
}

/** A migration file name: `0001_core.sql`. */
const MIGRATION_FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** Applies, in order, the migrations whose number is above the database's current one. */
export function applyMigrations(db: SqliteHandle, migrationsDir: string): number[] {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
  );
  const applied = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
      (r) => r.version,
    ),
  );
  const files = readdirSync(migrationsDir)
    .map((f) => ({ f, m: MIGRATION_FILE.exec(f) }))
    .filter((x): x is { f: string; m: RegExpExecArray } => x.m !== null)
    .sort((a, b) => a.f.localeCompare(b.f));
  const done: number[] = [];
  for (const { f, m } of files) {
    const version = Number(m[1]);
    if (applied.has(version)) continue;
    const sql = readFileSync(`${migrationsDir}/${f}`, 'utf8');
    db.transaction(() => {
      db.exec(sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        version,
        m[2],
        new Date().toISOString(),
      );
    })();
    done.push(version);
  }
  return done;
}
