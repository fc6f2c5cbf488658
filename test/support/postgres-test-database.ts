import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  POSTGRES_MIGRATIONS_DIR,
  PostgresDatabase,
} from '../../packages/quoll/src/store/postgres/postgres-database.js';
import { readMigrations } from '../../packages/quoll/src/store/schema-migrations.js';

/**
 * PostgreSQL for tests: `QUOLL_TEST_PG_URL`, else the local default below. On a machine
 * without PostgreSQL the tests that need it skip with {@link PG_SKIP_REASON}; with `CI=true`
 * they fail instead, so CI can never pass by skipping them.
 */
export const TEST_PG_URL = process.env.QUOLL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Whether PostgreSQL tests run here, and if not why. */
export interface PostgresAvailability {
  /** True when PostgreSQL answered, and always with `CI=true` (where the tests must run, and fail). */
  run: boolean;
  /** Why PostgreSQL did not answer; null when it did. */
  failure: string | null;
  /** The message a skipped describe block carries. */
  skipReason: string;
}

let availability: Promise<PostgresAvailability> | null = null;

/**
 * Probes PostgreSQL once per test process (a 3 s connect). Call it at the top of a test file:
 * `const pg = await postgresAvailability(); describe.skipIf(!pg.run)(…)`.
 */
export function postgresAvailability(): Promise<PostgresAvailability> {
  availability ??= probe().then((failure) => {
    const inCi = process.env.CI === 'true';
    const skipReason = `skipped: PostgreSQL is not reachable at ${redact(TEST_PG_URL)} (${failure ?? ''}); set QUOLL_TEST_PG_URL to run the PostgreSQL tests`;
    if (failure !== null && inCi) {
      console.error(
        `CI=true: PostgreSQL tests must run, but PostgreSQL is not reachable at ${redact(TEST_PG_URL)}: ${failure}`,
      );
    } else if (failure !== null) {
      console.warn(skipReason);
    }
    return { run: failure === null || inCi, failure, skipReason };
  });
  return availability;
}

async function probe(): Promise<string | null> {
  const client = new pg.Client({ connectionString: TEST_PG_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    await dropOrphans(client);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Drops test databases whose test process is gone (killed before its afterAll ran) and that
 * nobody is connected to, so they do not pile up on a developer's PostgreSQL.
 */
async function dropOrphans(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ datname: string }>(
    `SELECT datname FROM pg_database d WHERE datname ~ '^quoll_test_[0-9]+_[0-9a-f]+$'
       AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)`,
  );
  for (const { datname } of rows) {
    const pid = Number(datname.split('_')[2]);
    if (processAlive(pid)) continue;
    await client.query(`DROP DATABASE IF EXISTS ${datname}`).catch(() => undefined);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A database of its own for one test file; {@link TestDatabase.drop} removes it. */
export interface TestDatabase {
  /** Connection string of the new database. */
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * Creates a uniquely named database (`quoll_test_<pid>_<random>`): empty, as the tests of
 * migrations need, or with `migrated: true` a copy of a database this code's migrations were
 * applied to once (see {@link migratedTemplate}), for callers that would only migrate it first
 * (a test server, a node): copying it costs PostgreSQL less than copying the empty template1
 * and applying every migration again, for each of the end-to-end pass's servers.
 */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const { failure } = await postgresAvailability();
  if (failure !== null) throw new Error(`PostgreSQL is not reachable at ${redact(TEST_PG_URL)}: ${failure}`);
  const name = `quoll_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  if (options.migrated === true) {
    await admin(`CREATE DATABASE ${name} TEMPLATE ${await migratedTemplate()}`);
  } else {
    await admin(`CREATE DATABASE ${name}`);
  }
  return {
    url: databaseUrl(name),
    name,
    drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

let template: Promise<string> | null = null;

/**
 * The name of a database holding exactly this code's migrations, made once for every test
 * process of a run (and kept for the next runs): named by a hash of the migration files, so a
 * changed or added migration gets a template of its own and none is ever used stale. Made under
 * an advisory lock (test processes side by side wait for the first), migrated by the product's
 * own runner under a temporary name and renamed when done, so a process killed meanwhile
 * leaves no half-migrated template. Nobody connects to it afterwards (a database being copied
 * must have no sessions).
 */
function migratedTemplate(): Promise<string> {
  template ??= makeTemplate().catch((err: unknown) => {
    template = null;
    throw err;
  });
  return template;
}

async function makeTemplate(): Promise<string> {
  const hash = createHash('sha256');
  for (const m of readMigrations(POSTGRES_MIGRATIONS_DIR)) hash.update(`${m.version}\0${m.name}\0${m.sql}\0`);
  const name = `quoll_test_template_${hash.digest('hex').slice(0, 16)}`;
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  try {
    await client.query(`SELECT pg_advisory_lock(hashtext('quoll_test_template'))`);
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) {
      const building = `${name}_building`;
      await client.query(`DROP DATABASE IF EXISTS ${building} WITH (FORCE)`);
      await client.query(`CREATE DATABASE ${building}`);
      const db = await PostgresDatabase.open({ url: databaseUrl(building), poolSize: 1, listenerCheckMs: 0 });
      await db.close();
      await client.query(`ALTER DATABASE ${building} RENAME TO ${name}`);
    }
  } finally {
    await client.end();
  }
  return name;
}

function databaseUrl(name: string): string {
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '*****';
    return u.toString();
  } catch {
    return '(unparseable QUOLL_TEST_PG_URL)';
  }
}
