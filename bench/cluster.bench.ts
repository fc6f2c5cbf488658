// Tasks on a three-node cluster (one PostgreSQL database, created and dropped here):
//  1. runOnce → its first log line, p50 of 10, on node A and, interleaved, on an embedded server
//     (the reference), two ways: as a follower sees it (`followLogs()` on the run, opened as
//     soon as the run is listed), and through the API by polling (runs, then the run's log,
//     every 20 ms: each poll is three requests),
//  2. node loss: the node running a run-once and a continuous run is SIGKILLed; how long until
//     the run is closed `failure (node lost)` and the continuous task runs on another node,
//     against the bound of lease + 5 s,
//  3. 1000 scheduled tasks created through the three nodes, all ticking at one minute boundary
//     and at no other before it (`M * * * *`, M the minute of the first boundary at least
//     --create-budget seconds, default 90, after creation starts, so no tick passes while they
//     are created): how long after that boundary the last of its runs is created, and that no
//     task got two.
// Needs PostgreSQL (QUOLL_TEST_PG_URL).
// Run: node --import tsx bench/cluster.bench.ts [--tasks 1000] [--create-budget 90]
import { chmod, copyFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Client, Orchestration, Task, TaskRun } from '@quoll/client';
import { readyOrchestration, waitFor } from '../test/support/orchestration-helpers.js';
import { createTestDatabase } from '../test/support/postgres-test-database.js';
import { startTestServer, type TestServer } from '../test/support/test-server.js';
import { median, printTable, writeResults } from './support.js';

const argTasks = process.argv.indexOf('--tasks');
const TASKS = argTasks > 0 ? Number(process.argv[argTasks + 1]) : 1000;
const argBudget = process.argv.indexOf('--create-budget');
const CREATE_BUDGET_MS = (argBudget > 0 ? Number(process.argv[argBudget + 1]) : 90) * 1000;
const LEASE_MS = 5_000;
const SLEEPER = `console.log('sleeping');\nawait new Promise((resolve) => setTimeout(resolve, 600_000));\n`;
const QUICK = `console.log('tick ran');\n`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function runsOf(client: Client, task: Task): Promise<TaskRun[]> {
  return [...(await (await client.getTask(task.id)).lastRuns())];
}

const db = await createTestDatabase();
const servers: TestServer[] = [];
const results: Record<string, unknown> = { tasks: TASKS, leaseMs: LEASE_MS };
const table: (string | number)[][] = [];
const start = async (home: string | undefined, nodeId: string): Promise<TestServer> => {
  const server = await startTestServer({
    ...(home === undefined ? {} : { home }),
    args: ['--database', db.url],
    env: { QUOLL_CLUSTER_LEASE_MS: String(LEASE_MS), QUOLL_NODE_ID: nodeId },
  });
  servers.push(server);
  return server;
};
const homeWithKeyOf = async (server: TestServer): Promise<string> => {
  const home = await mkdtemp(join(tmpdir(), 'quoll-cluster-bench-'));
  await copyFile(join(server.home, 'master.key'), join(home, 'master.key'));
  await chmod(join(home, 'master.key'), 0o600);
  return home;
};
const sql = new pg.Client({ connectionString: db.url });
try {
  const a = await start(undefined, 'bench-a');
  const [b, c] = await Promise.all([
    start(await homeWithKeyOf(a), 'bench-b'),
    start(await homeWithKeyOf(a), 'bench-c'),
  ]);
  await sql.connect();
  const nodeOf = new Map<TestServer, string>();
  for (const s of servers) {
    nodeOf.set(s, ((await (await fetch(`${s.url}/v1/health`)).json()) as { node: string }).node);
  }
  const [quick, sleeper]: Orchestration[] = await Promise.all([
    readyOrchestration(a.client(), 'quick', { 'main.js': QUICK }),
    readyOrchestration(a.client(), 'sleeper', { 'main.js': SLEEPER }),
  ]);

  // 1. runOnce → first line, through node A, and through an embedded server (the reference),
  //    interleaved.
  const embedded = await startTestServer({});
  const embeddedQuick = await readyOrchestration(embedded.client(), 'quick', { 'main.js': QUICK });
  const firstLine = {
    follow: { node: [] as number[], embedded: [] as number[] },
    poll: { node: [] as number[], embedded: [] as number[] },
  };
  /** Polls until `probe` gives a value, every `everyMs` (waitFor's own pause is 100 ms). */
  const poll = async <T>(probe: () => Promise<T | undefined>, everyMs: number): Promise<T> => {
    const giveUpAt = performance.now() + 30_000;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (performance.now() > giveUpAt) throw new Error('gave up waiting for the first line');
      await sleep(everyMs);
    }
  };
  try {
    for (let i = 0; i < 10; i++) {
      for (const how of ['follow', 'poll'] as const) {
        for (const [kind, server, orchestration] of [
          ['node', a, quick as Orchestration],
          ['embedded', embedded, embeddedQuick],
        ] as const) {
          const t = performance.now();
          const task = await orchestration.runOnce({ name: `once ${how} ${i}` });
          if (how === 'follow') {
            const run = await poll(async () => (await runsOf(server.client(), task))[0], 5);
            for await (const line of run.followLogs()) if (line.line === 'tick ran') break;
          } else {
            await poll(async () => {
              const [run] = await runsOf(server.client(), task);
              return run !== undefined && (await run.logs()).some((l) => l.line === 'tick ran')
                ? true
                : undefined;
            }, 20);
          }
          firstLine[how][kind].push(performance.now() - t);
        }
      }
    }
  } finally {
    await embedded.stop();
    await embedded.cleanup();
  }
  results.runOnceFirstLine = Object.fromEntries(
    (['follow', 'poll'] as const).map((how) => [
      how,
      {
        nodeP50Ms: median(firstLine[how].node),
        nodeMaxMs: Math.max(...firstLine[how].node),
        embeddedP50Ms: median(firstLine[how].embedded),
        ratio: median(firstLine[how].node) / median(firstLine[how].embedded),
      },
    ]),
  );
  for (const how of ['follow', 'poll'] as const)
    table.push([
      `runOnce → first line ${how === 'follow' ? 'followed' : 'polled (20 ms)'}, p50 of 10 (ms): node (embedded)`,
      `${Math.round(median(firstLine[how].node))} (${Math.round(median(firstLine[how].embedded))})`,
      how === 'follow' ? '≤ 200' : '',
    ]);

  // 2. Node loss: B runs a run-once and a continuous run, then is SIGKILLed.
  const viaB = await b.client().getOrchestration((sleeper as Orchestration).id);
  const once = await viaB.runOnce({ name: 'dies with B' });
  const forever = await viaB.runContinuously({ name: 'moves off B' });
  const [onceRun, foreverRun] = await waitFor('both runs going on B', async () => {
    const [o] = await runsOf(a.client(), once);
    const [f] = await runsOf(a.client(), forever);
    if (o === undefined || f === undefined) return undefined;
    const started = async (r: TaskRun): Promise<boolean> =>
      (await r.logs()).some((l) => l.line === 'sleeping');
    return (await started(o)) && (await started(f)) ? ([o, f] as const) : undefined;
  });
  if (onceRun.node !== nodeOf.get(b) || foreverRun.node !== nodeOf.get(b))
    throw new Error('the runs did not start on B');
  const killedAt = performance.now();
  await b.kill();
  let closedMs: number | null = null;
  let movedMs: number | null = null;
  while ((closedMs === null || movedMs === null) && performance.now() - killedAt < LEASE_MS + 30_000) {
    if (closedMs === null && (await onceRun.refresh()).status !== 'running')
      closedMs = performance.now() - killedAt;
    if (movedMs === null) {
      const runs = await runsOf(a.client(), forever);
      if (runs.some((r) => r.status === 'running' && r.node !== nodeOf.get(b)))
        movedMs = performance.now() - killedAt;
    }
    await sleep(100);
  }
  const reason = (await onceRun.refresh()).reason;
  results.nodeLoss = { closedMs, movedMs, reason, boundMs: LEASE_MS + 5_000 };
  table.push(['node loss → run closed (ms)', Math.round(closedMs ?? NaN), `≤ ${LEASE_MS + 5_000}`]);
  table.push([
    'node loss → continuous task restarted (ms)',
    Math.round(movedMs ?? NaN),
    `≤ ${LEASE_MS + 5_000}`,
  ]);
  await (await a.client().getTask(forever.id)).kill();
  // B comes back, so the cron ticks are shared by three nodes again.
  servers.splice(servers.indexOf(b), 1);
  const b2 = await start(await homeWithKeyOf(a), 'bench-b2');

  // 3. TASKS tasks, created through the three nodes, that tick at one boundary only: a
  // `* * * * *` schedule would tick while they are created when that takes over a minute (85 s
  // at load 13), and the runs of that tick, queued behind the per-node concurrency, make the
  // next tick skip those tasks. `M * * * *` ticks once an hour, at minute M.
  const boundary = Math.ceil((Date.now() + CREATE_BUDGET_MS) / 60_000) * 60_000;
  const schedule = `${new Date(boundary).getUTCMinutes()} * * * *`;
  const created0 = performance.now();
  const live = [a, b2, c];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = next++; i < TASKS; i = next++) {
        const node = live[i % live.length] as TestServer;
        await (
          await node.client().getOrchestration((quick as Orchestration).id)
        ).runScheduled({
          name: `cron ${i}`,
          schedule,
        });
      }
    }),
  );
  const createSeconds = (performance.now() - created0) / 1000;
  // Each node arms the tasks created through the others within a second: a boundary closer
  // than that after the last task was created does not measure the cluster's tick.
  const createdInTime = boundary - Date.now() >= 1_500;
  if (!createdInTime)
    console.error(
      `creating ${TASKS} tasks took ${createSeconds.toFixed(1)} s, past ${new Date(boundary - 1_500).toISOString()}: the tick below is not a valid measure (raise --create-budget)`,
    );
  let allAt: number | null = null;
  let seen = { runs: 0, tasks: 0 };
  while (Date.now() < boundary + 20_000) {
    const row = (
      await sql.query<{ runs: string; tasks: string }>(
        `SELECT count(*) AS runs, count(DISTINCT task_id) AS tasks FROM task_runs
          WHERE tick = $1 AND task_id IN (SELECT id FROM tasks WHERE name LIKE 'cron %')`,
        [boundary],
      )
    ).rows[0];
    seen = { runs: Number(row?.runs ?? 0), tasks: Number(row?.tasks ?? 0) };
    if (seen.runs >= TASKS) {
      allAt = Date.now();
      break;
    }
    await sleep(Date.now() < boundary ? 500 : 100);
  }
  const lastCreated = (
    await sql.query<{ at: string | null }>(
      `SELECT max(created_at) AS at FROM task_runs
        WHERE tick = $1 AND task_id IN (SELECT id FROM tasks WHERE name LIKE 'cron %')`,
      [boundary],
    )
  ).rows[0]?.at;
  const lastMs =
    lastCreated === null || lastCreated === undefined ? null : Date.parse(lastCreated) - boundary;
  const doubled = Number(
    (
      await sql.query<{ n: string }>(
        `SELECT count(*) AS n FROM (SELECT task_id, tick FROM task_runs WHERE tick IS NOT NULL
          GROUP BY task_id, tick HAVING count(*) > 1) d`,
      )
    ).rows[0]?.n ?? 0,
  );
  const byNode = (
    await sql.query<{ node_id: string; n: string }>(
      'SELECT node_id, count(*) AS n FROM task_runs WHERE tick = $1 GROUP BY node_id ORDER BY node_id',
      [boundary],
    )
  ).rows.map((r) => `${r.node_id}: ${r.n}`);
  const ticks = (
    await sql.query<{ tick: string; n: string }>(
      'SELECT tick, count(*) AS n FROM task_runs WHERE tick IS NOT NULL GROUP BY tick ORDER BY tick',
    )
  ).rows.map((r) => `${r.tick}: ${r.n}`);
  results.cronTick = {
    boundary,
    schedule,
    createdInTime,
    ticks,
    tasks: TASKS,
    createTasksSeconds: createSeconds,
    runsCreated: seen.runs,
    lastRunCreatedMsAfterBoundary: lastMs,
    observedAllMsAfterBoundary: allAt === null ? null : allAt - boundary,
    doubled,
    byNode,
  };
  table.push([
    `${TASKS} tasks on one tick (created in ${createSeconds.toFixed(0)} s${createdInTime ? '' : ', NOT before the tick'}): last run created after the boundary (ms)`,
    lastMs === null ? `${seen.runs} runs` : Math.round(lastMs),
    '≤ 2000',
  ]);
  table.push(['  runs created / doubled', `${seen.runs} / ${doubled}`, `${TASKS} / 0`]);
} finally {
  await sql.end().catch(() => undefined);
  for (const s of servers) {
    await s.stop().catch(() => undefined);
    await s.cleanup().catch(() => undefined);
  }
  await db.drop();
}
printTable(['measure', 'result', 'target'], table);
console.log(JSON.stringify(results, null, 2));
writeResults('cluster', results);
