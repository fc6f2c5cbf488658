import { randomBytes } from 'node:crypto';
import pg from 'pg';

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

/** Creates a uniquely named, empty database (`quoll_test_<pid>_<random>`). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const { failure } = await postgresAvailability();
  if (failure !== null) throw new Error(`PostgreSQL is not reachable at ${redact(TEST_PG_URL)}: ${failure}`);
  const name = `quoll_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
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
