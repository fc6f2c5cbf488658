import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** One numbered plain-SQL migration file, e.g. `0001_core.sql`. */
export interface MigrationFile {
  version: number;
  name: string;
  sql: string;
}

/** The dialects with a migrations folder (`packages/quoll/migrations/<dialect>/`). */
export type MigrationDialect = 'sqlite' | 'postgres';

const MIGRATION_FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** The migrations folder of a dialect: both have the same numbers for the same tables. */
export function migrationsDir(dialect: MigrationDialect): string {
  return fileURLToPath(new URL(`../../migrations/${dialect}/`, import.meta.url));
}

/** The migration files of a folder, by number. */
export function readMigrations(dir: string): MigrationFile[] {
  return readdirSync(dir)
    .map((f) => ({ f, m: MIGRATION_FILE.exec(f) }))
    .filter((x): x is { f: string; m: RegExpExecArray } => x.m !== null)
    .sort((a, b) => a.f.localeCompare(b.f))
    .map(({ f, m }) => ({
      version: Number(m[1]),
      name: m[2] ?? '',
      sql: readFileSync(`${dir}/${f}`, 'utf8'),
    }));
}

/** A database whose schema is newer than this code knows: it must not be used by this code. */
export class SchemaTooNewError extends Error {
  constructor(
    readonly databaseVersion: number,
    readonly codeVersion: number,
    where: string,
  ) {
    super(
      `The database at ${where} has schema version ${databaseVersion}, but this Quoll knows only up to ${codeVersion}: ` +
        'it was migrated by a newer Quoll. Upgrade this node to that version (or newer) before starting it: ' +
        'Quoll does not start on a schema newer than its code (on a cluster, nodes that were already running ' +
        'when it was migrated keep serving until they are replaced: docs/distributed.md, Upgrades).',
    );
    this.name = 'SchemaTooNewError';
  }
}

/**
 * What a running node says once the database's schema is newer than its code (`schema_ahead`
 * on `GET /v1/health`, and in its log): another node, of a newer release, migrated it.
 */
export function schemaAheadMessage(state: { code: number; database: number }): string {
  return (
    `The database's schema is at version ${state.database}, newer than this node's code (${state.code}): ` +
    "a node of a newer Quoll migrated it. This node keeps serving (each release's migrations stay readable " +
    'and writable by the release before), but would refuse to start again on this schema: replace it with ' +
    'the newer release (docs/distributed.md, Upgrades).'
  );
}

/**
 * Which migrations to apply given the versions a database has applied; throws
 * {@link SchemaTooNewError} when the database has a version this code does not have.
 */
export function pendingMigrations(
  files: readonly MigrationFile[],
  applied: ReadonlySet<number>,
  where: string,
): MigrationFile[] {
  const newest = files.reduce((max, f) => Math.max(max, f.version), 0);
  const newestApplied = [...applied].reduce((max, v) => Math.max(max, v), 0);
  if (newestApplied > newest) throw new SchemaTooNewError(newestApplied, newest, where);
  return files.filter((f) => !applied.has(f.version));
}
