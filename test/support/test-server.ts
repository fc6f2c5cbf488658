import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@quoll/client';
import { createTestDatabase, type TestDatabase } from './postgres-test-database.js';

/** The built CLI; `npm test` builds first (pretest). */
export const CLI = fileURLToPath(new URL('../../packages/quoll/dist/cli/main.js', import.meta.url));

/** A real `quoll server` process on a free port with its own home. */
export interface TestServer {
  url: string;
  token: string;
  home: string;
  /** The PostgreSQL database the server is a node of; null for the embedded SQLite home. */
  database: string | null;
  /** Where its task runs get their directories (removed by cleanup()). */
  runsDir: string;
  process: ChildProcess;
  /** Server output so far (for debugging failed tests). */
  output(): string;
  client(): Client;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Deletes the home and the run directories (after stop). */
  cleanup(): Promise<void>;
}

/**
 * With `QUOLL_TEST_SERVER_DATABASE=postgres`, every test server is a node on a fresh PostgreSQL
 * database of its own (one per home, so a server restarted on the same home finds its data),
 * dropped by `cleanup()`: the whole e2e suite then runs against the PostgreSQL store.
 */
const databasesByHome = new Map<string, TestDatabase>();

async function databaseArgs(home: string, args: readonly string[]): Promise<string[]> {
  if (!serversOnPostgres || args.includes('--database')) return [];
  let db = databasesByHome.get(home);
  if (db === undefined) {
    // Migrated already: the server would only apply the same migrations first (a server that
    // migrates an empty database is tested on its own, test/e2e/postgres-node.test.ts).
    db = await createTestDatabase({ migrated: true });
    databasesByHome.set(home, db);
  }
  return ['--database', db.url];
}

function databaseOf(args: readonly string[]): string | null {
  const at = args.indexOf('--database');
  return at === -1 ? null : (args[at + 1] ?? null);
}

/**
 * What a node this harness puts on PostgreSQL gets unless the test (or the environment) says
 * otherwise: a 5 s lease on its node id and runs instead of the default 15 s. A server
 * SIGKILLed and started again on its home (a crash test) finds its old process's row still
 * `up` and waits a whole lease for it to go silent before it takes the id over
 * (ClusterMembership.start): 15 s of waiting at each such restart of the e2e-postgres pass
 * (server-home, tasks' restart recovery, inference-logs' durability). The cluster tests set
 * 3 s themselves; nothing in test/e2e depends on the lease's length.
 */
export const PG_NODE_LEASE_MS = '5000';

/**
 * The environment of a test server: this process's, then (a node this harness put on
 * PostgreSQL) the lease of {@link PG_NODE_LEASE_MS} unless this process's environment sets one,
 * then its run directory, then what the test gives.
 */
export function testServerEnv(options: {
  base: NodeJS.ProcessEnv;
  onTestDatabase: boolean;
  runsDir: string;
  env?: NodeJS.ProcessEnv;
}): NodeJS.ProcessEnv {
  return {
    ...options.base,
    ...(options.onTestDatabase
      ? { QUOLL_CLUSTER_LEASE_MS: options.base.QUOLL_CLUSTER_LEASE_MS ?? PG_NODE_LEASE_MS }
      : {}),
    QUOLL_RUNS_DIR: options.runsDir,
    ...options.env,
  };
}

/** Whether `url` is a database {@link databaseArgs} made for a test server's home. */
function isHarnessDatabase(url: string | null): boolean {
  if (url === null) return false;
  for (const db of databasesByHome.values()) if (db.url === url) return true;
  return false;
}

/** Whether test servers run on PostgreSQL (`QUOLL_TEST_SERVER_DATABASE=postgres`). */
export const serversOnPostgres = process.env.QUOLL_TEST_SERVER_DATABASE === 'postgres';

function withInherited(
  stdio: ('ignore' | 'pipe')[],
  fds: Record<number, number>,
): ('ignore' | 'pipe' | number)[] {
  const out: ('ignore' | 'pipe' | number)[] = [...stdio];
  for (const [at, fd] of Object.entries(fds)) {
    while (out.length <= Number(at)) out.push('ignore');
    out[Number(at)] = fd;
  }
  return out;
}

/** Starts `quoll server --port 0` on a fresh (or given) home and waits until it listens. */
export async function startTestServer(
  options: {
    home?: string;
    env?: NodeJS.ProcessEnv;
    args?: string[];
    /** Descriptors the server inherits, as a supervisor's `exec 200<>file` leaves them: number in the server → open descriptor here. */
    inheritFds?: Record<number, number>;
  } = {},
): Promise<TestServer> {
  const home = options.home ?? (await mkdtemp(join(tmpdir(), 'quoll-test-')));
  const onTestDatabase = await databaseArgs(home, options.args ?? []);
  const extra = [...onTestDatabase, ...(options.args ?? [])];
  // Run directories of their own (one per home, so a restart finds its runs), removed by
  // cleanup(). The name does not contain the home's path, which runs must not learn.
  const runsDir =
    options.env?.QUOLL_RUNS_DIR ??
    join(tmpdir(), `quoll-test-runs-${createHash('sha256').update(home).digest('hex').slice(0, 12)}`);
  const child = spawn(
    process.execPath,
    [CLI, 'server', '--home', home, '--port', '0', '--log-level', 'warn', ...extra],
    {
      env: testServerEnv({
        base: process.env,
        // A database this harness made, whether it added the flag or the test passes it on (a
        // restart on another home of the same database, as server-home's crash tests do).
        onTestDatabase: onTestDatabase.length > 0 || isHarnessDatabase(databaseOf(options.args ?? [])),
        runsDir,
        ...(options.env === undefined ? {} : { env: options.env }),
      }),
      stdio: withInherited(['ignore', 'pipe', 'pipe'], options.inheritFds ?? {}),
    },
  );
  const { stdout, stderr } = child;
  if (stdout === null || stderr === null) throw new Error('the server has no output pipes');
  let out = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (): void => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        stdout.off('data', onData);
        resolve(m[1]);
      }
    };
    stdout.on('data', onData);
    void exited.then((code) =>
      reject(new Error(`quoll server exited with ${String(code)} before listening:\n${out}`)),
    );
  });
  const creds = JSON.parse(await readFile(join(home, 'credentials.json'), 'utf8')) as { token: string };
  return {
    url,
    token: creds.token,
    home,
    database: databaseOf(extra),
    runsDir,
    process: child,
    output: () => out,
    client: () => new Client({ url, token: creds.token }),
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
    async cleanup() {
      await rm(home, { recursive: true, force: true });
      const db = databasesByHome.get(home);
      databasesByHome.delete(home);
      await db?.drop();
      await rm(runsDir, { recursive: true, force: true });
    },
  };
}

/**
 * Stops a test server the way a test file's `afterAll` must: SIGTERM (it drains), its home and
 * run directories deleted, then an error unless it exited 0, with its output to say why.
 *
 * @example afterAll(() => stopTestServer(server));
 */
export async function stopTestServer(server: TestServer): Promise<void> {
  const code = await server.stop();
  await server.cleanup();
  if (code !== 0)
    throw new Error(`quoll server exited with ${String(code)}, not 0; its output:\n${server.output()}`);
}
