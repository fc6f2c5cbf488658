// How a cron tick's runs spread over a three-node cluster, build against build (paired):
// for each build given (`--build DIR`, repeated; DIR holds packages/quoll/dist), a fresh
// database, three nodes of that build, TASKS scheduled tasks ticking at one minute boundary
// only (`M * * * *`), each run sleeping RUN_MS; then how long after the boundary the last run
// of that tick ended, how many ran on each node, and that none ran twice. The builds go one
// after the other, each at its own boundary, in the order given (give `--build base --build
// cand --build cand --build base` to balance the order).
// Needs PostgreSQL (QUOLL_TEST_PG_URL).
// Run: node --import tsx bench/tick-spread.bench.ts --build /tmp/x-base --build . [--tasks 18] [--run-ms 3000]
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { Client } from '@quoll/client';
import { readyOrchestration } from '../test/support/orchestration-helpers.js';
import { createTestDatabase } from '../test/support/postgres-test-database.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const builds = process.argv.flatMap((a, i) => (a === '--build' ? [resolve(process.argv[i + 1] ?? '.')] : []));
if (builds.length === 0) builds.push(resolve('.'));
const TASKS = arg('--tasks', 18);
const RUN_MS = arg('--run-ms', 3000);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Node {
  url: string;
  home: string;
  client: Client;
  stop: () => Promise<void>;
}

async function startNode(build: string, dbUrl: string, nodeId: string, home?: string): Promise<Node> {
  const dir = home ?? (await mkdtemp(join(tmpdir(), 'quoll-tick-spread-')));
  const runsDir = await mkdtemp(join(tmpdir(), 'quoll-tick-spread-runs-'));
  const child = spawn(
    process.execPath,
    [
      join(build, 'packages/quoll/dist/cli/main.js'),
      'server',
      '--home',
      dir,
      '--port',
      '0',
      '--log-level',
      'warn',
      '--database',
      dbUrl,
    ],
    {
      env: { ...process.env, QUOLL_RUNS_DIR: runsDir, QUOLL_NODE_ID: nodeId, QUOLL_CLUSTER_LEASE_MS: '5000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((ok, fail) => {
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) ok(m[1]);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(() => fail(new Error(`node exited before listening:\n${out}`)));
  });
  const { token } = JSON.parse(await readFile(join(dir, 'credentials.json'), 'utf8')) as { token: string };
  return {
    url,
    home: dir,
    client: new Client({ url, token }),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
      await rm(runsDir, { recursive: true, force: true });
    },
  };
}

async function oneBuild(build: string): Promise<Record<string, unknown>> {
  const db = await createTestDatabase();
  const nodes: Node[] = [];
  const sql = new pg.Client({ connectionString: db.url });
  try {
    const a = await startNode(build, db.url, 'spread-a');
    nodes.push(a);
    for (const id of ['spread-b', 'spread-c']) {
      const home = await mkdtemp(join(tmpdir(), 'quoll-tick-spread-'));
      await copyFile(join(a.home, 'master.key'), join(home, 'master.key'));
      await chmod(join(home, 'master.key'), 0o600);
      nodes.push(await startNode(build, db.url, id, home));
    }
    await sql.connect();
    const sleeper = await readyOrchestration(a.client, 'sleeper', {
      'main.js': `await new Promise((r) => setTimeout(r, ${RUN_MS}));\nconsole.log('done');\n`,
    });
    const boundary = Math.ceil((Date.now() + 25_000) / 60_000) * 60_000;
    const schedule = `${new Date(boundary).getUTCMinutes()} * * * *`;
    for (let i = 0; i < TASKS; i += 1) {
      const via = nodes[i % nodes.length] as Node;
      await (await via.client.getOrchestration(sleeper.id)).runScheduled({ name: `cron ${i}`, schedule });
    }
    if (boundary - Date.now() < 2_000) throw new Error('tasks created too close to the boundary');
    let doneAt: number | null = null;
    while (Date.now() < boundary + 120_000) {
      const row = (
        await sql.query<{ ended: string }>(
          "SELECT count(*) AS ended FROM task_runs WHERE tick = $1 AND status <> 'running'",
          [boundary],
        )
      ).rows[0];
      if (Number(row?.ended ?? 0) >= TASKS) {
        doneAt = Date.now();
        break;
      }
      await sleep(Date.now() < boundary ? 500 : 100);
    }
    const last = (
      await sql.query<{ at: string | null }>('SELECT max(updated_at) AS at FROM task_runs WHERE tick = $1', [
        boundary,
      ])
    ).rows[0]?.at;
    const byNode = Object.fromEntries(
      (
        await sql.query<{ node_id: string | null; n: string }>(
          'SELECT node_id, count(*) AS n FROM task_runs WHERE tick = $1 GROUP BY node_id ORDER BY node_id',
          [boundary],
        )
      ).rows.map((r) => [r.node_id ?? '(none)', Number(r.n)]),
    );
    const statuses = Object.fromEntries(
      (
        await sql.query<{ status: string; n: string }>(
          'SELECT status, count(*) AS n FROM task_runs WHERE tick = $1 GROUP BY status',
          [boundary],
        )
      ).rows.map((r) => [r.status, Number(r.n)]),
    );
    const doubled = Number(
      (
        await sql.query<{ n: string }>(
          'SELECT count(*) AS n FROM (SELECT task_id FROM task_runs WHERE tick = $1 GROUP BY task_id HAVING count(*) > 1) d',
          [boundary],
        )
      ).rows[0]?.n ?? 0,
    );
    return {
      build,
      tasks: TASKS,
      runMs: RUN_MS,
      lastEndedMs: last === null || last === undefined ? null : Date.parse(last) - boundary,
      allSeenEndedMs: doneAt === null ? null : doneAt - boundary,
      byNode,
      statuses,
      doubled,
    };
  } finally {
    await sql.end().catch(() => undefined);
    for (const n of nodes.reverse()) await n.stop().catch(() => undefined);
    await db.drop();
  }
}

for (const build of builds) {
  const result = await oneBuild(build);
  console.log(JSON.stringify(result));
}
