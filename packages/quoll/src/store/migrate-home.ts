import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FileKeyring, verifyMasterKey } from '../connections/index.js';
import { ApiError } from '../errors/index.js';
import { checkLogBatch, InferenceLogStore } from '../logs/index.js';
import type { LogPage } from '../logs/index.js';
import { FileRunLogStore } from '../runner/index.js';
import { PostgresBlobStorage } from './postgres/postgres-blob-storage.js';
import { PostgresDatabase } from './postgres/postgres-database.js';
import type { Sql } from './postgres/postgres-database.js';
import { PostgresLogBatchWriter } from './postgres/postgres-log-batch-writer.js';
import { PostgresKeyCheckStore } from './postgres/postgres-key-check-store.js';
import { openSqliteDatabase } from './sqlite/sqlite-database.js';
import type { SqliteHandle } from './sqlite/sqlite-database.js';
import { SqliteLogSegmentIndex } from './sqlite/sqlite-log-segment-index.js';

/**
 * The metadata tables a home's `quoll.db` and a cluster database share (same columns), parents
 * before children. Not copied: `schema_migrations` (each has its own), `cluster_nodes` (the
 * embedded server is no node of the cluster), `inference_log_segments` (the logs are copied
 * as rows, below).
 */
export const MIGRATED_TABLES = [
  'workspaces',
  'api_tokens',
  'models',
  'pipelines',
  'pipeline_versions',
  'deployments',
  'connections',
  'connection_workspaces',
  'connection_audit',
  'key_checks',
  'orchestrations',
  'orchestration_packaging_logs',
  'tasks',
  'task_runs',
  'task_ticks',
] as const;

/** Tables whose rows make a database "not empty" for a migration (anything a node or user wrote). */
const USER_DATA_TABLES = [
  ...MIGRATED_TABLES.filter((t) => t !== 'key_checks'),
  'blobs',
  'inference_log_batches',
  'task_run_log_lines',
] as const;

/** Rows copied per INSERT. */
const ROWS_PER_INSERT = 500;

/** Options of {@link migrateHome}. */
export interface MigrateHomeOptions {
  /** The embedded home to copy (its `quoll.db`, `blobs/`, `orchestrations/`, `inference-logs/`, `task-logs/`). No server may run on it. */
  home: string;
  /** The cluster database, `postgres://…`. */
  url: string;
  /** Schema of the cluster's tables. @default the connection's (`public`) */
  schema?: string;
  /** Where progress lines go. @default nowhere */
  print?: (line: string) => void;
  /**
   * Called after each step is committed (`metadata`, `blob <sha>`, `inference-logs <pipeline>`,
   * `run-logs <run>`); a throw stops the migration there, as an interruption would.
   */
  afterStep?: (step: string) => void | Promise<void>;
}

/** What {@link migrateHome} copied and checked. */
export interface MigrateHomeReport {
  /** The home's identity, recorded in the database (its `node-id`). */
  source: string;
  /** Whether an earlier, interrupted migration of the same home was continued. */
  resumed: boolean;
  /** Rows per metadata table, equal in the home and the database. */
  tables: Record<string, number>;
  /** Model files and orchestration archives stored (and read back with the right SHA-256). */
  blobs: number;
  /** Inference-log rows per pipeline id, equal in the home and the database. */
  inferenceLogRows: Record<string, number>;
  /** Task-run log lines, equal in the home and the database. */
  runLogLines: number;
}

function sourceInvalid(message: string, details: Record<string, unknown>): ApiError {
  return new ApiError('migrate_source_invalid', message, details);
}

/**
 * Copies an embedded home into an empty cluster database and checks the copy: every metadata
 * row, the model files and orchestration archives (by SHA-256), the sealed connections as they
 * are (the nodes need the home's master key), every inference-log row and every run-log line.
 *
 * Safe to run again after an interruption: each step commits on its own and is skipped or
 * repeated without doubling anything (metadata rows and log lines by key, files by SHA, each
 * pipeline's log in one transaction recorded as done). A database holding anything else
 * (data, or another home's migration) is refused with `migrate_target_not_empty`, changing
 * nothing; a copy that does not check out fails with `migrate_verification_failed`.
 */
export async function migrateHome(options: MigrateHomeOptions): Promise<MigrateHomeReport> {
  const print = options.print ?? (() => undefined);
  const afterStep = options.afterStep ?? (() => undefined);
  const dbPath = checkMigrationSource(options.home);
  const source = homeIdentity(options.home);
  const sqlite = openSqliteDatabase(dbPath);
  let pg: PostgresDatabase | null = null;
  try {
    pg = await PostgresDatabase.open({
      url: options.url,
      ...(options.schema === undefined ? {} : { schema: options.schema }),
      poolSize: 4,
      startTimeoutMs: 0,
    });
    const db = pg;
    const resumed = await claimTarget(db, source);
    print(`${resumed ? 'resuming the migration' : 'migrating'} of home ${options.home} (id ${source})`);

    if (!(await stepDone(db, source, 'metadata'))) {
      await db.transaction(async (sql) => {
        for (const table of MIGRATED_TABLES) await copyTable(sqlite, sql, table);
        await resetSequences(sql);
        await markDone(sql, source, 'metadata');
      });
      await afterStep('metadata');
    }
    const tables: Record<string, number> = {};
    // key_checks is checked by opening it with the home's key (below): the database may hold
    // one the home never had, sealed by that key at the first run.
    for (const table of MIGRATED_TABLES.filter((t) => t !== 'key_checks')) {
      const [want, got] = [countSqlite(sqlite, table), await countPostgres(db, table)];
      if (got !== want) {
        throw verificationFailed(`table ${table} has ${got} rows in the database and ${want} in the home`, {
          table,
          home: want,
          database: got,
        });
      }
      tables[table] = want;
    }
    // The connections stay sealed under the home's key: from now on, a node with another key
    // refuses to start on this database (as with any cluster whose key check it cannot open).
    if (existsSync(join(options.home, 'master.key'))) {
      await verifyMasterKey(
        new FileKeyring({ home: options.home }),
        new PostgresKeyCheckStore(db),
        new Date().toISOString(),
      );
    }
    print(
      `metadata: ${Object.entries(tables)
        .map(([t, n]) => `${t} ${n}`)
        .join(', ')}`,
    );

    const blobs = await copyBlobs(options.home, sqlite, db, afterStep);
    print(`files: ${blobs} model file(s) and orchestration archive(s), SHA-256 checked`);
    const inferenceLogRows = await copyInferenceLogs(options.home, sqlite, db, source, afterStep);
    print(
      `inference logs: ${Object.values(inferenceLogRows).reduce((a, b) => a + b, 0)} row(s) of ${Object.keys(inferenceLogRows).length} pipeline(s)`,
    );
    const runLogLines = await copyRunLogs(options.home, sqlite, db, afterStep);
    print(`run logs: ${runLogLines} line(s)`);
    await db.run('UPDATE home_migrations SET finished_at = $2 WHERE source = $1', [
      source,
      new Date().toISOString(),
    ]);
    return { source, resumed, tables, blobs, inferenceLogRows, runLogLines };
  } finally {
    await pg?.close();
    sqlite.close();
  }
}

/**
 * Checks that `home` is an embedded home (it has a `quoll.db`) and returns that database's
 * path; throws `migrate_source_invalid` otherwise.
 */
export function checkMigrationSource(home: string): string {
  const dbPath = join(home, 'quoll.db');
  if (!existsSync(dbPath)) {
    throw sourceInvalid(
      `No Quoll home at ${home} (it has no quoll.db): pass the --home directory an embedded server used.`,
      { home },
    );
  }
  return dbPath;
}

/** The home's id: its `node-id` (written by its first server), or its database path when it has none. */
function homeIdentity(home: string): string {
  const file = join(home, 'node-id');
  if (existsSync(file)) {
    const id = readFileSync(file, 'utf8').trim();
    if (id !== '') return id;
  }
  return `home:${join(home, 'quoll.db')}`;
}

/**
 * Records this home as the database's migration source, or finds it recorded (a re-run).
 * Refuses a database that holds data or another home's migration.
 */
async function claimTarget(db: PostgresDatabase, source: string): Promise<boolean> {
  return db.transaction(async (sql) => {
    // One migration at a time per database: a second one waits here, then sees the first's row.
    await sql.run("SELECT pg_advisory_xact_lock(hashtext('quoll:migrate-home'))");
    const claims = await sql.rows<{ source: string }>('SELECT source FROM home_migrations');
    if (claims.some((c) => c.source === source)) return true;
    const counts: Record<string, number> = {};
    for (const table of USER_DATA_TABLES) {
      const row = await sql.one<{ n: number }>(
        `SELECT count(*) AS n FROM (SELECT 1 FROM ${table} LIMIT 1) t`,
      );
      if ((row?.n ?? 0) > 0) counts[table] = row?.n ?? 0;
    }
    if (claims.length > 0 || Object.keys(counts).length > 0) {
      throw new ApiError(
        'migrate_target_not_empty',
        claims.length > 0
          ? `The database already holds a migration of another home (${claims.map((c) => c.source).join(', ')}); migrate into a new, empty database.`
          : `The database is not empty (it has rows in ${Object.keys(counts).join(', ')}): a home is migrated only into a new, empty database, before any node starts on it. Nothing was changed.`,
        { otherHomes: claims.map((c) => c.source), tablesWithRows: Object.keys(counts) },
      );
    }
    await sql.run('INSERT INTO home_migrations (source, started_at) VALUES ($1, $2)', [
      source,
      new Date().toISOString(),
    ]);
    return false;
  });
}

async function stepDone(db: Sql, source: string, step: string): Promise<boolean> {
  return (
    (await db.one('SELECT 1 AS one FROM home_migration_steps WHERE source = $1 AND step = $2', [
      source,
      step,
    ])) !== null
  );
}

async function markDone(sql: Sql, source: string, step: string): Promise<void> {
  await sql.run(
    'INSERT INTO home_migration_steps (source, step, done_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
    [source, step, new Date().toISOString()],
  );
}

function verificationFailed(message: string, details: Record<string, unknown>): ApiError {
  return new ApiError(
    'migrate_verification_failed',
    `The copy does not match the home: ${message}. Run the migration again; if it persists, report it.`,
    details,
  );
}

/** Copies one table's rows, by the database's column list and types (booleans from SQLite's 0/1). */
async function copyTable(sqlite: SqliteHandle, sql: Sql, table: string): Promise<void> {
  const columns = await sql.rows<{ column_name: string; data_type: string }>(
    `SELECT column_name, data_type FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  const names = columns.map((c) => c.column_name);
  const booleans = columns.map((c) => c.data_type === 'boolean');
  const rows = sqlite
    .prepare(`SELECT ${names.join(', ')} FROM ${table}`)
    .raw()
    .all() as unknown[][];
  for (let at = 0; at < rows.length; at += ROWS_PER_INSERT) {
    const chunk = rows.slice(at, at + ROWS_PER_INSERT);
    const values: unknown[] = [];
    const tuples = chunk.map((row) => {
      const marks = row.map((v, i) => {
        values.push(booleans[i] === true && v !== null ? v === 1 || v === true : v);
        return `$${values.length}`;
      });
      return `(${marks.join(', ')})`;
    });
    await sql.run(
      `INSERT INTO ${table} (${names.join(', ')}) VALUES ${tuples.join(', ')} ON CONFLICT DO NOTHING`,
      values,
    );
  }
}

/** Moves every serial column's sequence past the ids copied in. */
async function resetSequences(sql: Sql): Promise<void> {
  const serials = await sql.rows<{ table_name: string; column_name: string; seq: string }>(
    `SELECT table_name, column_name, pg_get_serial_sequence(quote_ident(table_name), column_name) AS seq
       FROM information_schema.columns
      WHERE table_schema = current_schema() AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL`,
  );
  for (const s of serials) {
    await sql.run(
      `SELECT setval($1, COALESCE((SELECT max(${s.column_name}) FROM ${s.table_name}), 0) + 1, false)`,
      [s.seq],
    );
  }
}

function countSqlite(sqlite: SqliteHandle, table: string): number {
  return (sqlite.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
}

async function countPostgres(db: Sql, table: string): Promise<number> {
  return (await db.one<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))?.n ?? 0;
}

/** SHA-256 of a file, streamed. */
async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Stores every model file and orchestration archive by SHA-256 (the home's file is hashed
 * first: a damaged file is refused, not spread), then reads each stored blob back and checks
 * its hash.
 */
async function copyBlobs(
  home: string,
  sqlite: SqliteHandle,
  db: PostgresDatabase,
  afterStep: (step: string) => void | Promise<void>,
): Promise<number> {
  const shared = new PostgresBlobStorage(db);
  const wanted = new Map<string, string>();
  for (const { sha } of sqlite.prepare('SELECT DISTINCT sha FROM models').all() as { sha: string }[]) {
    wanted.set(sha, join(home, 'blobs', 'sha256', sha.slice(0, 2), sha));
  }
  for (const { id, sha } of sqlite.prepare('SELECT id, sha FROM orchestrations').all() as {
    id: string;
    sha: string;
  }[]) {
    wanted.set(sha, join(home, 'orchestrations', id, 'source.zip'));
  }
  for (const [sha, path] of wanted) {
    if (!(await shared.has(sha))) {
      if (!existsSync(path)) {
        throw sourceInvalid(`The home lacks the file with SHA-256 ${sha} (expected at ${path}).`, {
          sha,
          path,
        });
      }
      const actual = await sha256OfFile(path);
      if (actual !== sha) {
        throw sourceInvalid(
          `The home's file ${path} has SHA-256 ${actual}, not the recorded ${sha}: it is damaged.`,
          {
            sha,
            actual,
            path,
          },
        );
      }
      const { size } = await stat(path);
      await shared.put(sha, size, () => createReadStream(path) as AsyncIterable<Uint8Array>);
      await afterStep(`blob ${sha}`);
    }
    const hash = createHash('sha256');
    for await (const chunk of shared.read(sha)) hash.update(chunk);
    const stored = hash.digest('hex');
    if (stored !== sha)
      throw verificationFailed(`the stored file ${sha} reads back as ${stored}`, { sha, stored });
  }
  return wanted.size;
}

/**
 * Copies each pipeline's inference log in one transaction (all of it or none), reading the
 * home's segments page by page oldest first, and records the pipeline as done. Every pipeline's
 * row count is then compared.
 */
async function copyInferenceLogs(
  home: string,
  sqlite: SqliteHandle,
  db: PostgresDatabase,
  source: string,
  afterStep: (step: string) => void | Promise<void>,
): Promise<Record<string, number>> {
  const index = new SqliteLogSegmentIndex(sqlite);
  const pipelineIds = await index.pipelineIds();
  const out: Record<string, number> = {};
  if (pipelineIds.length === 0) return out;
  const files = await InferenceLogStore.open({ dir: join(home, 'inference-logs'), index });
  try {
    for (const pipelineId of pipelineIds) {
      let want = 0;
      const step = `inference-logs ${pipelineId}`;
      if (!(await stepDone(db, source, step))) {
        // No retention caps here: the home's log was within its own, the copy keeps all of it,
        // in partitions of an eighth of it (a node at its cap drops them whole).
        const target = new PostgresLogBatchWriter(`migrated:${source}`, {
          maxBytesPerPipeline: Number.MAX_SAFE_INTEGER,
          maxBytesTotal: Number.MAX_SAFE_INTEGER,
          partitionBytes: Math.max(1, Math.ceil((await index.totalBytes(pipelineId)) / 8)),
        });
        want = await db.transaction(async (sql) => {
          let rows = 0;
          for await (const page of allPages(files, pipelineId)) {
            for (const b of page.table.batches) checkLogBatch(b);
            await target.write(sql, pipelineId, page.table.batches);
            rows += page.rows;
          }
          await markDone(sql, source, step);
          return rows;
        });
        await afterStep(step);
      } else {
        for await (const page of allPages(files, pipelineId)) want += page.rows;
      }
      const got = (
        await db.one<{ n: number | null }>(
          'SELECT sum(rows) AS n FROM inference_log_batches WHERE pipeline_id = $1',
          [pipelineId],
        )
      )?.n;
      if ((got ?? 0) !== want) {
        throw verificationFailed(
          `pipeline ${pipelineId} has ${got ?? 0} log rows in the database and ${want} in the home`,
          {
            pipelineId,
            home: want,
            database: got ?? 0,
          },
        );
      }
      out[String(pipelineId)] = want;
    }
  } finally {
    await files.stop();
  }
  return out;
}

/** Every page of a pipeline's log, oldest first (64 MiB at a time). */
async function* allPages(store: InferenceLogStore, pipelineId: number): AsyncGenerator<LogPage> {
  let cursor: string | undefined;
  for (;;) {
    const page = await store.query(pipelineId, {
      start: Number.MIN_SAFE_INTEGER,
      end: Number.MAX_SAFE_INTEGER,
      maxBytes: 64 * 1024 * 1024,
      ...(cursor === undefined ? {} : { cursor }),
    });
    if (page.rows > 0) yield page;
    if (page.nextCursor === null) return;
    cursor = page.nextCursor;
  }
}

/**
 * Copies every run's log lines (numbered as in the home, so a re-run inserts nothing twice)
 * and compares the line counts. A finished run's closing `quoll: run finished` line is its final line.
 */
async function copyRunLogs(
  home: string,
  sqlite: SqliteHandle,
  db: PostgresDatabase,
  afterStep: (step: string) => void | Promise<void>,
): Promise<number> {
  const files = new FileRunLogStore({ dir: join(home, 'task-logs') });
  const runs = sqlite.prepare('SELECT id, status FROM task_runs ORDER BY id').all() as {
    id: string;
    status: string;
  }[];
  let total = 0;
  for (const run of runs) {
    const lines = existsSync(join(home, 'task-logs', `${run.id}.log`)) ? await files.read(run.id) : [];
    if (lines.length === 0) continue;
    const already = await countRunLines(db, run.id);
    if (already < lines.length) {
      const last = lines.length - 1;
      for (let at = 0; at < lines.length; at += ROWS_PER_INSERT) {
        const chunk = lines.slice(at, at + ROWS_PER_INSERT);
        await db.run(
          `INSERT INTO task_run_log_lines (run_id, seq, time, stream, line, quoll, final)
           SELECT $1, $2::bigint + l.i - 1, l.time, l.stream, l.line, l.quoll, l.final
             FROM unnest($3::text[], $4::text[], $5::text[], $6::boolean[], $7::boolean[])
               WITH ORDINALITY AS l(time, stream, line, quoll, final, i)
           ON CONFLICT (run_id, seq) DO NOTHING`,
          [
            run.id,
            at + 1,
            chunk.map((l) => l.time),
            chunk.map((l) => l.stream),
            chunk.map((l) => l.line),
            chunk.map((l) => l.line.startsWith('quoll: ')),
            chunk.map(
              (l, i) =>
                at + i === last && run.status !== 'running' && l.line.startsWith('quoll: run finished'),
            ),
          ],
        );
      }
      await afterStep(`run-logs ${run.id}`);
    }
    const got = await countRunLines(db, run.id);
    if (got !== lines.length) {
      throw verificationFailed(
        `run ${run.id} has ${got} log lines in the database and ${lines.length} in the home`,
        {
          runId: run.id,
          home: lines.length,
          database: got,
        },
      );
    }
    total += lines.length;
  }
  return total;
}

async function countRunLines(db: Sql, runId: string): Promise<number> {
  return (
    (await db.one<{ n: number }>('SELECT count(*) AS n FROM task_run_log_lines WHERE run_id = $1', [runId]))
      ?.n ?? 0
  );
}
