// Tasks benchmark: spawn → first line of user code, printed line → visible to a follower,
// trivial runs back to back, and 1000 `* * * * *` tasks at one cron boundary.
// Each runner figure is measured interleaved with a raw child_process reference (what the
// machine can do without Quoll). Run: npx tsx bench/tasks.bench.ts — writes bench/results/tasks.json.
// Parts 1-3 run through the runner as a `quoll server` with its defaults builds it: sandboxed
// (bubblewrap) where that works, its limits, its task user; BENCH_SANDBOX=off runs direct processes.
// BENCH_CRON_START=1 runs instead part 5 (minutes of wall time): cron tick → run started on a real
// `quoll server`, over consecutive minute boundaries, with skipped and doubled ticks — writes
// bench/results/tasks-cron-start.json (see measureCronStart).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { offsetClock } from '../packages/quoll/src/clock/index.js';
import { resolveServerConfig } from '../packages/quoll/src/config/server-config.js';
import { resolveClientPackageDir } from '../packages/quoll/src/orchestrations/resolve-client-package.js';
import { NodeRuntime, setUpSandbox, TaskRunner } from '../packages/quoll/src/runner/index.js';
import type { PackagedOrchestration } from '../packages/quoll/src/runner/index.js';
import { CronScheduler } from '../packages/quoll/src/scheduler/index.js';
import type { TaskRunRecord } from '../packages/quoll/src/scheduler/index.js';
import { MIGRATIONS_DIR, openSqliteDatabase } from '../packages/quoll/src/store/sqlite/sqlite-database.js';
import { SqliteTaskStore } from '../packages/quoll/src/store/sqlite/sqlite-task-store.js';
import type { Task } from '@quoll/client';
import {
  loadAverage,
  median,
  percentile,
  printTable,
  startQuoll,
  stopAll,
  uploadToReady,
  writeResults,
} from './support.js';

const root = mkdtempSync(join(tmpdir(), 'quoll-bench-tasks-'));
const now = (): number => performance.timeOrigin + performance.now();
const cronStart = process.env.BENCH_CRON_START === '1';

function pkg(name: string, source: string): PackagedOrchestration {
  const dir = join(root, 'pkgs', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'main.mjs'), source);
  return { dir, entry: 'main.mjs' };
}

/** Parts 1-4 (the default): the runner alone, and the scheduler over a real SQLite store. */
async function measureRunner(): Promise<void> {
  // BENCH_WARM_PROCESSES=0 measures cold spawns only (the runner before the warm pool).
  const warmProcesses = Number(process.env.BENCH_WARM_PROCESSES ?? 2);
  // The path a `quoll server` with its defaults gives runs: its sandbox (bubblewrap where it
  // works; BENCH_SANDBOX=off for direct processes), its task user, limits and private /tmp, and
  // the Node runtime with the SDK mounted. (Before 6 December this part ran direct processes
  // without limits: not what users get.)
  const config = resolveServerConfig({ home: join(root, 'home') }, {}, root);
  const runsDir = join(root, 'runs');
  const sandbox = await setUpSandbox({
    mode: process.env.BENCH_SANDBOX === 'off' ? 'off' : 'auto',
    network: 'host',
    taskUser: null,
    limits: config.taskLimits,
    scratchDir: join(runsDir, '.quoll'),
    apiPort: () => 9,
    tmpBytes: config.taskTmpBytes,
  });
  const runner = new TaskRunner({
    logsDir: join(root, 'logs'),
    runsDir,
    serverUrl: 'http://127.0.0.1:9',
    warmProcesses,
    taskUser: sandbox.taskUser,
    launcher: sandbox.launcher,
    runtimes: [new NodeRuntime({ sdkDir: resolveClientPackageDir() })],
    limits: config.taskLimits,
    issueRunToken: () => Promise.resolve({ token: 't', revoke: () => Promise.resolve() }),
  });
  console.log(
    `runs: ${sandbox.status.sandboxed ? 'sandboxed (bubblewrap)' : `not sandboxed (${sandbox.status.reason ?? ''})`}, warm pool of ${warmProcesses}, load ${loadAverage()}`,
  );
  await runner.warm();
  let seq = 0;
  const runId = (): string => `bench-${++seq}`;

  // 1. start() → first line of user code visible to a follower, vs raw spawn → first stdout chunk.
  const first = pkg('first', "console.log('first line');");
  async function quollFirstLine(): Promise<number> {
    const t0 = now();
    const h = runner.start({
      runId: runId(),
      taskId: 't',
      workspaceId: 1,
      jsonArgs: {},
      timeoutSeconds: 900,
      package: first,
    });
    let t1 = NaN;
    for await (const l of runner.followRunLog(h.runId)) {
      if (l.line === 'first line') {
        t1 = now();
        break;
      }
    }
    await h.done;
    return t1 - t0;
  }
  function rawFirstLine(): Promise<number> {
    return new Promise((resolve) => {
      const t0 = now();
      let t1 = NaN;
      const c = spawn(process.execPath, [join(first.dir, first.entry)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      c.stdout.once('data', () => (t1 = now()));
      c.once('close', () => resolve(t1 - t0));
    });
  }
  const firstQ: number[] = [];
  const firstR: number[] = [];
  await quollFirstLine(); // warm up
  await rawFirstLine();
  for (let i = 0; i < 30; i++) {
    firstQ.push(await quollFirstLine());
    firstR.push(await rawFirstLine());
  }

  // 2. printed line → visible to followRunLog (child stamps each line with its wall time).
  const printer = pkg(
    'printer',
    `let i = 0;
     const t = setInterval(() => {
       console.log('L ' + (performance.timeOrigin + performance.now()));
       if (++i === 100) clearInterval(t);
     }, 10);`,
  );
  const visible: number[] = [];
  for (let round = 0; round < 3; round++) {
    const h = runner.start({
      runId: runId(),
      taskId: 't',
      workspaceId: 1,
      jsonArgs: {},
      timeoutSeconds: 900,
      package: printer,
    });
    for await (const l of runner.followRunLog(h.runId)) {
      if (l.line.startsWith('L ')) visible.push(now() - Number(l.line.slice(2)));
    }
    await h.done;
  }

  // 3. trivial runs back to back: 100 runs through the runner (concurrency 4), vs 100 raw spawns 4 at a time.
  const trivial = pkg('trivial', 'process.exit(0);');
  async function quollTrivial(n: number): Promise<number> {
    const t0 = now();
    const hs = Array.from({ length: n }, () =>
      runner.start({
        runId: runId(),
        taskId: 't',
        workspaceId: 1,
        jsonArgs: {},
        timeoutSeconds: 900,
        package: trivial,
      }),
    );
    const outs = await Promise.all(hs.map((h) => h.done));
    if (outs.some((o) => o.status !== 'success')) throw new Error('a trivial run failed');
    return n / ((now() - t0) / 1000);
  }
  async function rawTrivial(n: number, concurrency: number): Promise<number> {
    const t0 = now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < n) {
        next++;
        await new Promise<void>((resolve) => {
          spawn(process.execPath, [join(trivial.dir, trivial.entry)], { stdio: 'ignore' }).once('close', () =>
            resolve(),
          );
        });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return n / ((now() - t0) / 1000);
  }
  const perSecQ: number[] = [];
  const perSecR: number[] = [];
  for (let i = 0; i < 3; i++) {
    perSecQ.push(await quollTrivial(100));
    perSecR.push(await rawTrivial(100, 4));
  }
  await runner.stop();

  // 4. 1000 `* * * * *` tasks: real SQLite store, real timers, a clock shifted so the next
  // minute boundary is ~1.5 s away; time from the boundary until all runs are committed.
  // Every migration: the task store's statements use columns later ones added (node_id, …).
  const db = openSqliteDatabase(join(root, 'quoll.db'), MIGRATIONS_DIR);
  const real = Date.now();
  const boundary = Math.ceil((real + 60_000) / 60_000) * 60_000;
  const clock = offsetClock(boundary - 1_500 - real);
  const store = new SqliteTaskStore(db, { clock });
  const ids: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const t = await store.createTask({
      name: `cron-${i}`,
      type: 'Scheduled Run',
      orchestrationId: 'o',
      workspaceId: 1,
      schedule: '* * * * *',
      timezone: null,
      jsonArgs: {},
      timeout: 900,
    });
    ids.push(t.id);
  }
  let createdAt = NaN;
  const created: TaskRunRecord[] = [];
  const allCreated = new Promise<void>((resolve) => {
    const scheduler = new CronScheduler({
      store,
      clock,
      onRuns: (runs) => {
        created.push(...runs);
        createdAt = clock.now();
        if (created.length >= 1000) void scheduler.stop().then(resolve);
      },
    });
    for (const id of ids)
      scheduler.arm({ id, schedule: '* * * * *', timezone: null, lastTick: null, createdAt: '' });
  });
  await allCreated;
  const cronLagMs = createdAt - boundary;
  const distinct = new Set(created.map((r) => r.taskId)).size;
  const doubled = (db.prepare('SELECT COUNT(*) AS n FROM task_runs').get() as { n: number }).n - distinct;
  db.close();
  rmSync(root, { recursive: true, force: true });

  const results = {
    machine: { cpus: cpus().length, node: process.version },
    warmProcesses,
    sandboxed: sandbox.status.sandboxed,
    startToFirstLine: {
      p50Ms: median(firstQ),
      p95Ms: percentile(firstQ, 95),
      rawSpawnP50Ms: median(firstR),
      targetP50Ms: 150,
    },
    lineToFollower: {
      p50Ms: median(visible),
      p95Ms: percentile(visible, 95),
      samples: visible.length,
      targetP50Ms: 100,
    },
    trivialRunsPerSecond: { quoll: median(perSecQ), rawSpawn: median(perSecR), concurrency: 4, target: 20 },
    cron1000: {
      runsCreated: created.length,
      distinctTasks: distinct,
      doubled,
      msAfterBoundary: cronLagMs,
      targetMs: 1000,
    },
  };
  printTable(
    ['measure', 'quoll', 'raw reference', 'ratio', 'target'],
    [
      [
        'start → first user line p50 (ms)',
        median(firstQ),
        median(firstR),
        median(firstQ) / median(firstR),
        '≤ 150',
      ],
      ['start → first user line p95 (ms)', percentile(firstQ, 95), percentile(firstR, 95), '', ''],
      ['printed line → follower p50 (ms)', median(visible), '', '', '≤ 100'],
      ['printed line → follower p95 (ms)', percentile(visible, 95), '', '', ''],
      [
        'trivial runs per second (c=4)',
        median(perSecQ),
        median(perSecR),
        median(perSecQ) / median(perSecR),
        '≥ 20',
      ],
      ['1000 cron runs committed after boundary (ms)', cronLagMs, '', '', '≤ 1000'],
      ['1000 cron runs: created / doubled', `${created.length} / ${doubled}`, '', '', '1000 / 0'],
    ],
  );
  writeResults('tasks', results);
}

/** Milliseconds since the epoch of an RFC 3339 time with up to nanoseconds (Z assumed when no zone). */
function epochMs(time: string): number {
  const zoned = /(Z|[+-]\d\d:\d\d)$/.test(time) ? time : `${time}Z`;
  return Date.parse(zoned.replace(/(\.\d{3})\d+/, '$1'));
}

/**
 * 5. BENCH_CRON_START=1 (this part only, minutes of wall time): BENCH_CRON_TASKS (default 5)
 * `* * * * *` tasks on a real `quoll server` whose user code prints its own wall time first.
 * For every run at BENCH_CRON_BOUNDARIES (default 2) consecutive minute boundaries (the first at
 * least 5 s after the tasks were created): run created (the API's createdAt), first line captured
 * (its log time) and user code running (the time it printed), each minus the boundary; and
 * whether each task has exactly one run per boundary (none skipped, none doubled) and no
 * skipped or missed tick recorded. The API has no run start time: the first line stands for it.
 * The runs are read BENCH_CRON_SETTLE_S (default 15) after the last boundary: raise it with many tasks.
 */
async function measureCronStart(): Promise<void> {
  const tasks = Number(process.env.BENCH_CRON_TASKS ?? 5);
  const boundaries = Number(process.env.BENCH_CRON_BOUNDARIES ?? 2);
  const settleS = Number(process.env.BENCH_CRON_SETTLE_S ?? 15);
  const loadBefore = loadAverage();
  // Both cores: no load generator here, and the runs (children of the server) share its pinning.
  const s = await startQuoll(root, 'cron', [], { cores: '0-1' });
  const results: Record<string, unknown> = {};
  try {
    const [, o] = await uploadToReady(
      s.client,
      { 'main.mjs': "console.log('start ' + (performance.timeOrigin + performance.now()));" },
      0,
    );
    const created: Task[] = [];
    for (let i = 0; i < tasks; i++)
      created.push(await o.runScheduled({ name: `cron-${i}`, schedule: '* * * * *', timeout: 50 }));
    const first = Math.ceil((now() + 5_000) / 60_000) * 60_000;
    const ticks = Array.from({ length: boundaries }, (_, i) => first + i * 60_000);
    const last = ticks[ticks.length - 1] ?? first;
    console.log(
      `${tasks} tasks created; boundaries ${ticks.map((t) => new Date(t).toISOString()).join(', ')}; done about ${new Date(last + settleS * 1000).toISOString()}`,
    );
    // Every run of the last boundary should have started and finished by then (else its first
    // line is counted missing below): runs queue behind the server's task concurrency (4).
    await new Promise((r) => setTimeout(r, last + settleS * 1000 - now()));
    const createdMs: number[] = [];
    const firstLineMs: number[] = [];
    const userMs: number[] = [];
    const perBoundary = ticks.map(() => ({
      runs: 0,
      maxCreatedMs: -Infinity,
      minFirstLineMs: Infinity,
      maxFirstLineMs: -Infinity,
    }));
    const perRun: { task: string; boundary: number; createdMs: number; firstLineMs: number | null }[] = [];
    let skipped = 0;
    let doubled = 0;
    let recordedTicks = 0;
    let noFirstLine = 0;
    for (const task of created) {
      const runs = await task.lastRuns();
      recordedTicks += (await task.ticks()).filter((t) => epochMs(t.tick) >= first - 60_000).length;
      for (const [b, tick] of ticks.entries()) {
        const at = runs.filter((r) => r.tick !== null && epochMs(r.tick) === tick);
        if (at.length === 0) skipped++;
        doubled += Math.max(0, at.length - 1);
        for (const run of at) {
          const line = (await run.logs()).find((l) => l.line.startsWith('start '));
          const c = epochMs(run.createdAt) - tick;
          createdMs.push(c);
          const pb = perBoundary[b]!;
          pb.runs++;
          pb.maxCreatedMs = Math.max(pb.maxCreatedMs, c);
          if (line === undefined) {
            noFirstLine++;
            perRun.push({ task: task.name, boundary: b, createdMs: c, firstLineMs: null });
            continue;
          }
          const f = epochMs(line.time) - tick;
          firstLineMs.push(f);
          userMs.push(Number(line.line.slice('start '.length)) - tick);
          pb.minFirstLineMs = Math.min(pb.minFirstLineMs, f);
          pb.maxFirstLineMs = Math.max(pb.maxFirstLineMs, f);
          perRun.push({ task: task.name, boundary: b, createdMs: c, firstLineMs: f });
        }
      }
    }
    const stats = (xs: number[]): { p50: number; p95: number; max: number } => ({
      p50: median(xs),
      p95: percentile(xs, 95),
      max: Math.max(...xs),
    });
    Object.assign(results, {
      machine: { cpus: cpus().length, node: process.version },
      tasks,
      boundaries: ticks.map((t) => new Date(t).toISOString()),
      runsExpected: tasks * boundaries,
      runsFound: createdMs.length,
      skipped,
      doubled,
      recordedSkippedOrMissedTicks: recordedTicks,
      runsWithoutFirstLine: noFirstLine,
      createdAfterBoundaryMs: stats(createdMs),
      firstLineAfterBoundaryMs: stats(firstLineMs),
      userCodeAfterBoundaryMs: stats(userMs),
      perBoundary,
      perRun,
      targetMs: 1000,
      load: { before: loadBefore, after: loadAverage() },
    });
    console.log(
      `\n${tasks} \`* * * * *\` tasks over ${boundaries} boundaries on a quoll server; load ${loadBefore}–${loadAverage()}`,
    );
    const cells = (xs: number[]): number[] => [median(xs), percentile(xs, 95), Math.max(...xs)];
    printTable(
      ['after the minute boundary (ms)', 'p50', 'p95', 'max', 'target'],
      [
        ['run created (API createdAt)', ...cells(createdMs), ''],
        ['first line captured (log time)', ...cells(firstLineMs), '≤ 1000'],
        ['user code running (its own clock)', ...cells(userMs), '≤ 1000'],
      ],
    );
    printTable(
      ['runs expected', 'found', 'skipped', 'doubled', 'ticks recorded skipped/missed', 'no first line'],
      [[tasks * boundaries, createdMs.length, skipped, doubled, recordedTicks, noFirstLine]],
    );
    for (const task of created) await task.kill();
  } finally {
    await stopAll([s.proc]);
    rmSync(root, { recursive: true, force: true });
  }
  writeResults('tasks-cron-start', results);
}

await (cronStart ? measureCronStart() : measureRunner());
