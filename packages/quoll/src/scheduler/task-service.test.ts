import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock/index.js';
import { LocalNotifier } from '../cluster/index.js';
import type { PackagedOrchestration, TaskRunnerOptions } from '../runner/index.js';
import { LOST_RUN_REASON, STOPPED_RUN_REASON, TaskRunner } from '../runner/index.js';
import { ApiError } from '../errors/index.js';
import { openStore } from '../store/index.js';
import type { Stores } from '../store/index.js';
import { MISSED_WHILE_DOWN } from './cron-scheduler.js';
import type { TaskRecord, TaskRunRecord, TaskStore } from './task-store.js';
import { MISSED_WAITING_WHILE_DOWN, nodeLostReason, TaskService } from './task-service.js';
import type { TaskServiceOptions } from './task-service.js';
import { storeWith } from '../store/conformance/store-with.js';
import { LossyNotifier } from '../../../../test/support/lossy-notifier.js';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 30);
const MIN = 60_000;

let root: string;
let stores: Stores;
let clock: ManualClock;
let store: TaskStore;
let packages: Map<string, PackagedOrchestration>;
let services: { service: TaskService; runner: TaskRunner }[];

function orchestration(id: string, source: string): string {
  const dir = join(root, 'pkgs', id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'main.mjs'), source);
  packages.set(id, { dir, entry: 'main.mjs' });
  return id;
}

/** An every-minute scheduled task written straight to the store (as a previous process left it), still pending. */
async function storedScheduledTask(orchestrationId: string): Promise<TaskRecord> {
  return store.createTask({
    ...base,
    type: 'Scheduled Run',
    orchestrationId,
    schedule: '* * * * *',
    timezone: null,
    jsonArgs: {},
    timeout: 900,
  });
}

/**
 * A started every-minute task with its tick's run created waiting (as `shareTickRuns` leaves it),
 * for any node's free slot.
 */
async function waitingTickRun(
  orchestrationId: string,
  tick: number,
): Promise<{ task: TaskRecord; run: TaskRunRecord }> {
  const task = await storedScheduledTask(orchestrationId);
  await store.setTaskStatus(task.id, 'started');
  const [created] = await store.createTickRuns([{ taskId: task.id, tick }], null);
  if (created?.outcome !== 'created') throw new Error('no tick run created');
  return { task, run: created.run };
}

/** An orchestration whose runs each hold their slot (print `done` and end) only once `open()` is called. */
function gatedOrchestration(id: string): { id: string; open: () => void } {
  const gate = join(root, `gate-${id}`);
  return {
    id: orchestration(
      id,
      `import { existsSync } from 'node:fs';
const t = setInterval(() => { if (existsSync(${JSON.stringify(gate)})) { clearInterval(t); console.log('done'); } }, 20);`,
    ),
    open: () => writeFileSync(gate, ''),
  };
}

/** A continuous task stored as a node stores it (created, then `started`), with no run yet. */
async function startedContinuousTask(orchestrationId: string): Promise<TaskRecord> {
  const task = await store.createTask({
    ...base,
    type: 'Continuous Run',
    orchestrationId,
    schedule: null,
    timezone: null,
    jsonArgs: {},
    timeout: null,
  });
  return (await store.setTaskStatus(task.id, 'started')) ?? task;
}

async function service(
  over: Partial<TaskServiceOptions> = {},
  runnerOver: Partial<TaskRunnerOptions> = {},
): Promise<{ service: TaskService; runner: TaskRunner }> {
  const runner = new TaskRunner({
    logsDir: join(root, 'logs'),
    runsDir: join(root, 'runs'),
    serverUrl: 'http://127.0.0.1:9',
    clock,
    killGraceMs: 1_000,
    issueRunToken: () => Promise.resolve({ token: 't', revoke: () => Promise.resolve() }),
    ...runnerOver,
  });
  const s = new TaskService({
    store,
    runner,
    clock,
    resolvePackage: (id) => {
      const p = packages.get(id);
      if (p === undefined) throw new ApiError('orchestration_not_found', `No orchestration has id "${id}".`);
      return p;
    },
    ...over,
  });
  await s.start();
  const both = { service: s, runner };
  services.push(both);
  return both;
}

/** Polls (real time) until `check` holds; fails the test if it never does. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/**
 * Waits until a restart `ms` from now is armed. A run's failure is stored before its restart
 * timer is set (the crash-loop flag is written in between), so advancing the manual clock as
 * soon as the failure shows could pass before the timer exists, and it would never fire.
 */
async function restartArmed(ms: number): Promise<void> {
  await waitFor(`a restart in ${ms} ms`, () => clock.hasTimerIn(ms));
}

const base = { workspaceId: 3, name: 'job' };

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'quoll-tasks-'));
  clock = new ManualClock(T0);
  stores = await openStore({ kind: 'sqlite', path: join(root, 'quoll.db') }, { clock });
  store = stores.tasks;
  packages = new Map();
  services = [];
});
afterEach(async () => {
  for (const { service: s, runner } of services) {
    await s.stop();
    expect(runner.activeCount + runner.queuedCount).toBe(0);
  }
  expect(clock.pendingTimers).toBe(0);
  await stores.close();
  rmSync(root, { recursive: true, force: true });
});

describe('TaskService', () => {
  it('runs a run-once task once; the task stays started and the run holds the outcome', async () => {
    const { service: s } = await service();
    const o = orchestration('o1', "console.log('args ' + process.env.QUOLL_TASK_ARGS);");
    const task = await s.createOnce({ ...base, orchestrationId: o, jsonArgs: { pipeline_name: 'p' } });
    expect(task).toMatchObject({ type: 'Temporary Run', status: 'started', timeout: 900, schedule: null });
    await waitFor('the run to end', async () => (await s.getTask(task.id)).lastRunStatus === 'success');
    const runs = await s.listRuns(task.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'success', exitCode: 0, reason: 'exit 0', tick: null });
    expect((await s.getTask(task.id)).status).toBe('started');
    expect((await s.readRunLog(runs[0]!.id)).map((l) => l.line)).toEqual([
      'args {"pipeline_name":"p"}',
      'quoll: run finished: success (exit 0)',
    ]);
  });

  it.each([
    ['an invalid schedule', { schedule: '*/5 * * *' }, 'invalid_schedule'],
    ['an unknown time zone', { schedule: '* * * * *', timezone: 'Nowhere/Land' }, 'invalid_schedule'],
    [
      'array jsonArgs',
      { schedule: '* * * * *', jsonArgs: [1] as unknown as Record<string, unknown> },
      'invalid_task_args',
    ],
    ['a fractional timeout', { schedule: '* * * * *', timeout: 1.5 }, 'invalid_task_args'],
    ['an empty name', { schedule: '* * * * *', name: ' ' }, 'invalid_name'],
    [
      'an unknown orchestration',
      { schedule: '* * * * *', orchestrationId: 'nope' },
      'orchestration_not_found',
    ],
  ])('refuses %s with a clear error and writes nothing', async (_what, over, code) => {
    const { service: s } = await service();
    const o = orchestration('o1', '');
    await expect(s.createScheduled({ ...base, orchestrationId: o, ...over })).rejects.toMatchObject({
      code,
    });
    expect(await s.listTasks({ killed: true })).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('takes a disk limit under the server limit, and refuses one above it, naming QUOLL_TASK_DISK', async () => {
    const server = {
      memoryBytes: null,
      processes: null,
      openFiles: null,
      cpuSeconds: null,
      diskBytes: 1024 ** 3,
    };
    const { service: s } = await service({ limits: server });
    const o = orchestration('o1', '');
    const task = await s.createScheduled({
      ...base,
      orchestrationId: o,
      schedule: '0 0 * * *',
      limits: { diskBytes: 1024 ** 2 },
    });
    expect(task.limits).toEqual({ diskBytes: 1024 ** 2 });
    const above = s.createScheduled({
      ...base,
      name: 'big',
      orchestrationId: o,
      schedule: '0 0 * * *',
      limits: { diskBytes: 2 * 1024 ** 3 },
    });
    await expect(above).rejects.toMatchObject({ code: 'invalid_task_args' });
    await expect(above).rejects.toThrow(/QUOLL_TASK_DISK/);
    expect((await s.listTasks({ killed: true })).map((t) => t.name)).toEqual(['job']);
  });

  it('refuses a task memory limit below what the Node.js of the runs needs to start, and writes nothing', async () => {
    const { service: s } = await service({ memoryFloorBytes: 600 * 1024 ** 2 });
    const o = orchestration('o1', '');
    const low = s.createScheduled({
      ...base,
      orchestrationId: o,
      schedule: '0 0 * * *',
      limits: { memoryBytes: 512 * 1024 ** 2 },
    });
    await expect(low).rejects.toMatchObject({ code: 'invalid_task_args' });
    await expect(low).rejects.toThrow(
      /^Task limit memoryBytes 536870912 bytes is below 629145600 bytes \(600 MiB\), the least the Node\.js of this server's runs needs to start/,
    );
    expect(await s.listTasks({ killed: true })).toEqual([]);
    const ok = await s.createScheduled({
      ...base,
      orchestrationId: o,
      schedule: '0 0 * * *',
      limits: { memoryBytes: 1024 ** 3 },
    });
    expect(ok.limits).toEqual({ memoryBytes: 1024 ** 3 });
  });

  it('stores the normalised schedule and runs a scheduled task at each tick', async () => {
    const { service: s } = await service();
    const o = orchestration('o1', "console.log('tick run');");
    const task = await s.createScheduled({ ...base, orchestrationId: o, schedule: '*/1, *, *, *, *' });
    expect(task).toMatchObject({
      type: 'Scheduled Run',
      status: 'started',
      schedule: '*/1 * * * *',
      timezone: null,
    });
    expect(await s.listRuns(task.id)).toEqual([]);
    await clock.advance(30_000);
    await waitFor('the first run to end', async () => (await s.getTask(task.id)).lastRunStatus === 'success');
    await clock.advance(MIN);
    await waitFor('two runs', async () => (await s.listRuns(task.id, { status: 'success' })).length === 2);
    expect((await s.listRuns(task.id)).map((r) => r.tick)).toEqual([T0 + 90_000, T0 + 30_000]);
  });

  it('kill stops the running run, then marks the task killed; no run starts afterwards', async () => {
    const { service: s } = await service();
    const o = orchestration('o1', "console.log('up'); setInterval(() => {}, 1000);");
    const task = await s.createScheduled({ ...base, orchestrationId: o, schedule: '* * * * *' });
    await clock.advance(30_000);
    const [run] = await s.listRuns(task.id);
    await waitFor('the run to print', async () => (await s.readRunLog(run!.id)).length > 0);
    expect(await s.kill(task.id)).toBe('pending_kill');
    expect((await store.getTask(task.id))?.status).toBe('pending_kill');
    await waitFor('the task to be killed', async () => (await s.getTask(task.id)).status === 'killed');
    expect(await s.getRun(run!.id)).toMatchObject({ status: 'killed' });
    await clock.advance(10 * MIN);
    expect(await s.listRuns(task.id)).toHaveLength(1);
    expect((await s.listTasks()).map((t) => t.id)).not.toContain(task.id);
    expect((await s.listTasks({ killed: true })).map((t) => t.id)).toContain(task.id);
    expect(await s.kill(task.id)).toBe('pending_kill'); // killing again changes nothing
    expect((await s.getTask(task.id)).status).toBe('killed');
  });

  it('kill of an unknown task is task_not_found', async () => {
    const { service: s } = await service();
    await expect(s.kill('nope')).rejects.toMatchObject({ code: 'task_not_found' });
  });

  it('restarts a continuous task with exponential backoff and flags a crash loop', async () => {
    const { service: s } = await service({ backoff: { initialMs: 1000, maxMs: 8000, crashLoopAfter: 4 } });
    const o = orchestration('o1', "console.error('crash'); process.exit(2);");
    const task = await s.createContinuous({ ...base, orchestrationId: o });
    expect(task).toMatchObject({ type: 'Continuous Run', status: 'started', timeout: null });
    const ended = async (n: number): Promise<void> =>
      waitFor(
        `${n} failed runs`,
        async () => (await s.listRuns(task.id, { status: 'failure' })).length === n,
      );
    const runs = async (): Promise<number> => (await s.listRuns(task.id)).length;
    await ended(1);
    // Delays 1 s, 2 s, 4 s, 8 s, 8 s: one tick short of each, nothing starts.
    for (const [n, delay] of [
      [1, 1000],
      [2, 2000],
      [3, 4000],
      [4, 8000],
      [5, 8000],
    ] as const) {
      await restartArmed(delay);
      await clock.advance(delay - 1);
      expect(await runs()).toBe(n);
      await clock.advance(1);
      await waitFor(`run ${n + 1}`, async () => (await runs()) === n + 1);
      await ended(n + 1);
      const reason = (await s.getTask(task.id)).statusReason;
      if (n + 1 >= 4) expect(reason).toMatch(/^crash loop: the last \d+ runs failed/);
      else expect(reason).toBeNull();
    }
  });

  it('resets the backoff and clears the crash loop after a run that lived long enough', async () => {
    const { service: s } = await service({
      backoff: { initialMs: 1000, healthyAfterMs: 60_000, crashLoopAfter: 2 },
    });
    const gate = join(root, 'gate');
    const o = orchestration(
      'o1',
      `import { existsSync, rmSync } from 'node:fs';
       const gate = ${JSON.stringify(gate)};
       if (!existsSync(gate)) process.exit(1);
       rmSync(gate); console.log('healthy');
       const t = setInterval(() => { if (existsSync(gate)) { clearInterval(t); } }, 5);`,
    );
    const task = await s.createContinuous({ ...base, orchestrationId: o });
    const failures = async (): Promise<number> => (await s.listRuns(task.id, { status: 'failure' })).length;
    await waitFor('run 1 fails', async () => (await failures()) === 1);
    await restartArmed(1000);
    await clock.advance(1000);
    await waitFor('run 2 fails', async () => (await failures()) === 2);
    await waitFor('crash loop flagged', async () => (await s.getTask(task.id)).statusReason !== null);
    writeFileSync(gate, ''); // the next run stays up until the gate reappears
    await restartArmed(2000);
    await clock.advance(2000);
    // The timer's run is created asynchronously: wait for it, not the failed run before it.
    await waitFor('run 3 starts', async () => (await s.listRuns(task.id)).length === 3);
    const healthy = (await s.listRuns(task.id))[0]!;
    // It prints once it has removed the gate, so the gate written below is the one it waits for
    // (printing first, a CI run once wrote the gate before the run removed the old one, and the
    // run never ended).
    await waitFor('the healthy run prints', async () => (await s.readRunLog(healthy.id)).length > 0);
    await clock.advance(60_000); // it lives a (manual) minute
    writeFileSync(gate, '');
    await waitFor('the healthy run ends', async () => (await s.getRun(healthy.id)).status === 'success');
    await waitFor('crash loop cleared', async () => (await s.getTask(task.id)).statusReason === null);
    await restartArmed(1000);
    await clock.advance(999);
    expect(await s.listRuns(task.id)).toHaveLength(3);
    await clock.advance(1);
    await waitFor('restarted after the initial delay', async () => (await s.listRuns(task.id)).length === 4);
  });

  it('a killed crash-looping task no longer says it is crash-looping', async () => {
    const { service: s } = await service({ backoff: { initialMs: 1000, crashLoopAfter: 1 } });
    const o = orchestration('o1', 'process.exit(1);');
    const task = await s.createContinuous({ ...base, orchestrationId: o });
    await waitFor('crash loop flagged', async () => (await s.getTask(task.id)).statusReason !== null);
    expect(await s.kill(task.id)).toBe('pending_kill');
    const killed = await s.getTask(task.id);
    expect(killed).toMatchObject({ status: 'killed', statusReason: null });
  });

  it('kill during the backoff wait of a continuous task starts no further run', async () => {
    const { service: s } = await service();
    const o = orchestration('o1', 'process.exit(1);');
    const task = await s.createContinuous({ ...base, orchestrationId: o });
    await waitFor('run 1 fails', async () => (await s.listRuns(task.id, { status: 'failure' })).length === 1);
    await waitFor('restart armed', () => clock.pendingTimers === 1);
    await s.kill(task.id);
    expect((await s.getTask(task.id)).status).toBe('killed');
    await clock.advance(5 * MIN);
    expect(await s.listRuns(task.id)).toHaveLength(1);
  });

  it('kill of a run-once task terminates its process', async () => {
    const { service: s } = await service();
    const o = orchestration('o1', "console.log('up'); setInterval(() => {}, 1000);");
    const task = await s.createOnce({ ...base, orchestrationId: o });
    const [run] = await s.listRuns(task.id);
    await waitFor('the run prints', async () => (await s.readRunLog(run!.id)).length > 0);
    await s.kill(task.id);
    await waitFor('killed', async () => (await s.getTask(task.id)).status === 'killed');
    expect((await s.getRun(run!.id)).status).toBe('killed');
    expect((await s.readRunLog(run!.id)).at(-1)?.line).toBe(
      'quoll: run finished: killed (the task was killed)',
    );
  });

  it('on start, closes lost runs, records missed ticks and resumes scheduled and continuous tasks', async () => {
    // State left by a previous server process that died: a scheduled task whose run was
    // running, and a continuous task whose run was running.
    const o = orchestration('o1', "console.log('resumed');");
    const scheduled = await storedScheduledTask(o);
    await store.setTaskStatus(scheduled.id, 'started');
    // Held by this node (the default id, 'local') in its previous process.
    const held = { nodeId: 'local', leaseMs: 15_000 };
    const [tickRun] = await store.createTickRuns([{ taskId: scheduled.id, tick: T0 + 30_000 }], held);
    const continuous = await startedContinuousTask(o);
    const oldRun = await store.createRun({ taskId: continuous.id, tick: null, owner: held });
    await clock.advance(3 * MIN); // down for three minutes

    const runningAtRevoke: string[][] = [];
    const { service: s } = await service({
      revokeStaleRunTokens: async () =>
        void runningAtRevoke.push((await store.runningRuns()).map((r) => r.id)),
    });
    // The stale run tokens are revoked once the dead process's runs are closed (none running).
    expect(runningAtRevoke).toEqual([[]]);
    if (tickRun?.outcome !== 'created') throw new Error('expected a run');
    for (const id of [tickRun.run.id, oldRun!.id]) {
      expect(await s.getRun(id)).toMatchObject({
        status: 'failure',
        exitCode: null,
        reason: LOST_RUN_REASON,
      });
      expect((await s.readRunLog(id)).map((l) => l.line)).toEqual([
        `quoll: run finished: failure (${LOST_RUN_REASON})`,
      ]);
    }
    expect((await store.listTickRecords(scheduled.id)).map((t) => [t.tick, t.reason])).toEqual([
      [T0 + 150_000, MISSED_WHILE_DOWN],
      [T0 + 90_000, MISSED_WHILE_DOWN],
    ]);
    // The same records through the service (what GET /v1/tasks/:id/ticks serves).
    expect((await s.listTicks(scheduled.id, { limit: 1 })).map((t) => [t.tick, t.kind])).toEqual([
      [T0 + 150_000, 'missed'],
    ]);
    await expect(s.listTicks('no-such-task')).rejects.toMatchObject({ code: 'task_not_found' });
    // The continuous task got a new run at once; the scheduled one waits for its next tick.
    await waitFor('continuous restarted', async () => (await s.listRuns(continuous.id)).length === 2);
    expect(await s.listRuns(scheduled.id)).toHaveLength(1);
    await clock.advance(30_000);
    await waitFor(
      'next tick ran',
      async () => (await s.listRuns(scheduled.id, { status: 'success' })).length === 1,
    );
    expect((await s.listRuns(scheduled.id))[0]?.tick).toBe(T0 + 210_000);
  });

  it('on start, completes kills and starts run-once tasks whose run was never created', async () => {
    const o = orchestration('o1', "console.log('late start');");
    const killing = await storedScheduledTask(o);
    await store.setTaskStatus(killing.id, 'pending_kill');
    const once = await store.createTask({
      ...base,
      type: 'Temporary Run',
      orchestrationId: o,
      schedule: null,
      timezone: null,
      jsonArgs: {},
      timeout: 900,
    });
    const { service: s } = await service();
    expect((await s.getTask(killing.id)).status).toBe('killed');
    await waitFor('the once run ends', async () => (await s.getTask(once.id)).lastRunStatus === 'success');
    expect((await s.getTask(once.id)).status).toBe('started');
    await clock.advance(5 * MIN);
    expect(await s.listRuns(killing.id)).toEqual([]);
  });

  it('stop() ends running runs, clears timers and refuses new tasks', async () => {
    const { service: s, runner } = await service();
    const o = orchestration('o1', "console.log('up'); setInterval(() => {}, 1000);");
    const c = await s.createContinuous({ ...base, orchestrationId: o });
    await s.createScheduled({ ...base, orchestrationId: o, schedule: '0 * * * *' });
    const [run] = await s.listRuns(c.id);
    await waitFor('the run prints', async () => (await s.readRunLog(run!.id)).length > 0);
    await s.stop();
    expect(runner.activeCount + runner.queuedCount).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    expect((await s.getRun(run!.id)).status).toBe('failure');
    expect((await s.getRun(run!.id)).reason).toMatch(/^stopped: /);
    await expect(s.createOnce({ ...base, orchestrationId: o })).rejects.toMatchObject({
      code: 'shutting_down',
    });
  });

  it('stop() during a boundary closes the runs the boundary created, instead of leaving them running', async () => {
    // The boundary's transaction is in flight when the stop comes: its runs are committed
    // after the scheduler stopped, and must still reach an outcome.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const createTickRuns: TaskStore['createTickRuns'] = async (ticks, owner) => {
      entered();
      await gate;
      return store.createTickRuns(ticks, owner);
    };
    const gated = storeWith(store, { createTickRuns });
    const { service: s } = await service({ store: gated });
    const o = orchestration('o1', "console.log('tick run');");
    const task = await s.createScheduled({ ...base, orchestrationId: o, schedule: '* * * * *' });
    void clock.advance(30_000);
    await inside;
    const stopped = s.stop();
    release();
    await stopped;
    const runs = await s.listRuns(task.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'failure', reason: STOPPED_RUN_REASON });
  });

  it('listRuns refuses an unknown status filter', async () => {
    const { service: s } = await service();
    const o = orchestration('o1', '');
    const task = await s.createOnce({ ...base, orchestrationId: o });
    await expect(s.listRuns(task.id, { status: 'bogus' as never })).rejects.toMatchObject({
      code: 'invalid_request',
    });
    await waitFor('the run ends', async () => (await s.getTask(task.id)).lastRunStatus === 'success');
  });

  it('refuses a limit past the safe integers (invalid_request), which the store cannot bind', async () => {
    // GET /v1/tasks/:id/runs?limit=1e20 (an integer to the query's schema) was a 500: SQLite
    // answered "datatype mismatch" for a LIMIT no 64-bit integer holds.
    const { service: s } = await service();
    const o = orchestration('o1', '');
    const task = await s.createOnce({ ...base, orchestrationId: o });
    await waitFor('the run ends', async () => (await s.getTask(task.id)).lastRunStatus === 'success');
    for (const limit of [1e20, 2 ** 53, Number.MAX_VALUE]) {
      await expect(s.listRuns(task.id, { limit })).rejects.toMatchObject({ code: 'invalid_request' });
      await expect(s.listTicks(task.id, { limit })).rejects.toMatchObject({ code: 'invalid_request' });
      const [run] = await s.listRuns(task.id);
      await expect(s.readRunLog(run!.id, { limit })).rejects.toMatchObject({ code: 'invalid_request' });
    }
    expect(await s.listRuns(task.id, { limit: Number.MAX_SAFE_INTEGER })).toHaveLength(1);
  });

  describe('with several nodes on one store', () => {
    const notifier = new LocalNotifier();

    /** A service of another node over `taskStore` (e.g. this store with methods replaced), collecting its errors' contexts. */
    async function nodeOver(
      taskStore: TaskStore,
      options: Partial<TaskServiceOptions> & { nodeId: string },
    ): Promise<{ node: TaskService; errors: string[] }> {
      const errors: string[] = [];
      const { service: node } = await service({
        store: taskStore,
        notifier,
        coordinatorClock: clock,
        onError: (_err, context) => errors.push(context),
        ...options,
      });
      return { node, errors };
    }

    it("leaves another node's run alone until its lease ends, then closes it as node lost and restarts its continuous task here", async () => {
      const o = orchestration('o1', "console.log('up'); setInterval(() => {}, 1000);");
      const continuous = await startedContinuousTask(o);
      const theirs = await store.createRun({
        taskId: continuous.id,
        tick: null,
        owner: { nodeId: 'node-b', leaseMs: 15_000 },
      });
      const { service: s } = await service({
        nodeId: 'node-a',
        leaseMs: 15_000,
        notifier,
        coordinatorClock: clock,
      });
      // Node B's run is B's while its lease lasts: no second run starts here.
      await clock.advance(10_000);
      expect((await s.getRun(theirs!.id)).status).toBe('running');
      expect(await s.listRuns(continuous.id)).toHaveLength(1);
      // B stopped renewing: once the lease is over, a round of this node closes the run.
      await clock.advance(9_000);
      await waitFor('the run closed', async () => (await s.readRunLog(theirs!.id)).length > 0);
      expect(await s.getRun(theirs!.id)).toMatchObject({
        status: 'failure',
        reason: nodeLostReason('node-b'),
      });
      expect((await s.readRunLog(theirs!.id)).map((l) => l.line)).toEqual([
        `quoll: run finished: failure (${nodeLostReason('node-b')})`,
      ]);
      await waitFor('restarted on node A', async () => (await s.listRuns(continuous.id)).length === 2);
      const [fresh] = await s.listRuns(continuous.id);
      expect(fresh).toMatchObject({ status: 'running', nodeId: 'node-a' });
      await waitFor('it prints', async () => (await s.readRunLog(fresh!.id)).length > 0);
      // Node A renews its own run's lease: however long it runs, nobody takes it as lost.
      await clock.advance(60_000);
      expect((await s.getRun(fresh!.id)).status).toBe('running');
    });

    it("does not start a continuous task another node has just created (its first run is that node's to make)", async () => {
      const o = orchestration('o1', "console.log('up'); setInterval(() => {}, 1000);");
      // Node B stored the task and marked it started, and is about to create its first run.
      const task = await startedContinuousTask(o);
      const { service: s } = await service({
        nodeId: 'node-a',
        leaseMs: 15_000,
        notifier,
        coordinatorClock: clock,
      });
      // Rounds of node A in the meantime leave it alone.
      await clock.advance(20_000);
      expect(await s.listRuns(task.id)).toEqual([]);
      const mine = await store.createRun({
        taskId: task.id,
        tick: null,
        owner: { nodeId: 'node-b', leaseMs: 15_000 },
      });
      expect(mine).toMatchObject({ nodeId: 'node-b' });
      expect(await s.listRuns(task.id)).toHaveLength(1);
    });

    it('starts a continuous task whose creating node died before making its first run', async () => {
      const o = orchestration('o1', "console.log('up'); setInterval(() => {}, 1000);");
      const task = await startedContinuousTask(o);
      const { service: s } = await service({
        nodeId: 'node-a',
        leaseMs: 15_000,
        notifier,
        coordinatorClock: clock,
      });
      // Longer than the longest restart back-off plus two leases: nobody is going to start it.
      for (let i = 0; i < 12; i += 1) await clock.advance(30_000);
      await waitFor('node A starts it', async () => (await s.listRuns(task.id)).length === 1);
      const [run] = await s.listRuns(task.id);
      expect(run).toMatchObject({ status: 'running', nodeId: 'node-a' });
      await waitFor('it prints', async () => (await s.readRunLog(run!.id)).length > 0);
    });

    it('a node that runs no tasks leaves its run waiting; a node that does claims and runs it', async () => {
      const o = orchestration('o1', "console.log('claimed');");
      const { service: front } = await service({
        nodeId: 'front',
        runsTasks: false,
        notifier,
        coordinatorClock: clock,
      });
      const task = await front.createOnce({ ...base, orchestrationId: o });
      const [waiting] = await front.listRuns(task.id);
      expect(waiting).toMatchObject({ status: 'running', nodeId: null });
      await clock.advance(10_000);
      expect((await front.getRun(waiting!.id)).status).toBe('running');
      const { service: worker } = await service({ nodeId: 'worker', notifier, coordinatorClock: clock });
      await waitFor('the run ends', async () => (await worker.getRun(waiting!.id)).status === 'success');
      expect(await worker.getRun(waiting!.id)).toMatchObject({ nodeId: 'worker', exitCode: 0 });
      expect((await worker.readRunLog(waiting!.id)).map((l) => l.line)).toContain('claimed');
    });

    it('a kill that finds a run unclaimed and a node that claims it at that moment: the run never starts', async () => {
      const o = orchestration('o1', "console.log('claimed');");
      // The kill message is lost between the nodes (each hears only its own): the claimer
      // learns of the kill from the store alone.
      let armed = false;
      let claimNow!: () => void;
      const claimGate = new Promise<void>((r) => (claimNow = r));
      let claimedIt!: () => void;
      const claimDone = new Promise<void>((r) => (claimedIt = r));
      // Node A's kill lists the task's runs and sees the run unclaimed; node B's claim
      // commits before A goes on to close it.
      const frontStore = storeWith(store, {
        listRuns: async (...args: Parameters<TaskStore['listRuns']>) => {
          const runs = await store.listRuns(...args);
          if (armed) {
            armed = false;
            claimNow();
            await claimDone;
          }
          return runs;
        },
      });
      const workerStore = storeWith(store, {
        claimRuns: async (...args: Parameters<TaskStore['claimRuns']>) => {
          await claimGate;
          const runs = await store.claimRuns(...args);
          if (runs.length > 0) claimedIt();
          return runs;
        },
      });
      const { service: front } = await service({
        nodeId: 'front',
        runsTasks: false,
        store: frontStore,
        notifier: new LocalNotifier(),
        coordinatorClock: clock,
      });
      const task = await front.createOnce({ ...base, orchestrationId: o });
      const [waiting] = await front.listRuns(task.id);
      let started = 0;
      const { service: worker, runner } = await service({
        nodeId: 'worker',
        store: workerStore,
        notifier: new LocalNotifier(),
        coordinatorClock: clock,
        observer: { runStarted: () => (started += 1), runFinished: () => {}, tickFired: () => {} },
      });
      armed = true;
      await front.kill(task.id);
      await waitFor('the task killed', async () => (await worker.getTask(task.id)).status === 'killed');
      await waitFor('the run closed', async () => (await worker.readRunLog(waiting!.id)).length > 0);
      await waitFor('the worker idle', () => runner.activeCount + runner.queuedCount === 0);
      expect(started).toBe(0);
      expect(await worker.getRun(waiting!.id)).toMatchObject({ status: 'killed' });
      expect((await worker.readRunLog(waiting!.id)).map((l) => l.line)).toEqual([
        'quoll: run finished: killed (the task was killed before the run started)',
      ]);
    });

    it('a kill announced while its listening connection was down reaches the run once the connection is back', async () => {
      const o = orchestration('o1', "console.log('up'); setInterval(() => {}, 1000);");
      // The worker hears nothing the front publishes while deaf; its rounds run only when woken.
      const lossy = new LossyNotifier();
      const { service: worker, runner } = await service({
        nodeId: 'worker',
        notifier: lossy,
        coordinatorClock: clock,
      });
      const { service: front } = await service({
        nodeId: 'front',
        runsTasks: false,
        notifier: new LocalNotifier(),
        coordinatorClock: clock,
      });
      const task = await worker.createOnce({ ...base, orchestrationId: o });
      await waitFor('the run started', () => runner.activeCount === 1);
      lossy.deaf = true;
      await front.kill(task.id);
      await new Promise((r) => setTimeout(r, 50));
      expect(runner.activeCount).toBe(1);
      lossy.reconnect();
      await waitFor('the run stopped', () => runner.activeCount === 0);
      await waitFor('the task killed', async () => (await worker.getTask(task.id)).status === 'killed');
    });

    it("claims no more of one workspace's waiting runs than --task-workspace-concurrency, and leaves the other slots to other workspaces", async () => {
      const o = orchestration('o1', "console.log('up'); setInterval(() => {}, 1000);");
      const { service: front } = await service({
        nodeId: 'front',
        runsTasks: false,
        notifier,
        coordinatorClock: clock,
      });
      // One workspace floods run-once tasks through a node that runs none.
      const flood: string[] = [];
      for (let i = 0; i < 5; i += 1) flood.push((await front.createOnce({ ...base, orchestrationId: o })).id);
      const { service: worker, runner } = await service(
        { nodeId: 'worker', notifier, coordinatorClock: clock },
        { concurrency: 3, workspaceConcurrency: 2 },
      );
      const heldWorkspaces = async (): Promise<number[]> => {
        const held = (await store.runningRuns()).filter((r) => r.nodeId === 'worker');
        const out: number[] = [];
        for (const run of held) out.push((await worker.getTask(run.taskId)).workspaceId);
        return out.sort();
      };
      await waitFor('the worker running two runs', () => runner.activeCount === 2);
      // Rounds go by with a slot free: the flood's third run is not claimed, to wait here.
      for (let i = 0; i < 3; i += 1) {
        await clock.advance(3_000);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await heldWorkspaces()).toEqual([3, 3]);
      expect(runner.queuedCount).toBe(0);
      expect((await store.runningRuns()).filter((r) => r.nodeId === null)).toHaveLength(3);
      // Another workspace's run takes the free slot at once.
      const late = await front.createOnce({ ...base, workspaceId: 4, orchestrationId: o });
      await waitFor('the worker running three runs', () => runner.activeCount === 3);
      expect(await heldWorkspaces()).toEqual([3, 3, 4]);
      expect((await worker.listRuns(late.id))[0]?.nodeId).toBe('worker');
      for (const id of [...flood, late.id]) await front.kill(id);
    });

    it('a round that fails between claiming a run and launching it launches it in a later round (its lease kept)', async () => {
      const o = orchestration('o1', "console.log('claimed');");
      const { service: front } = await service({
        nodeId: 'front',
        runsTasks: false,
        notifier,
        coordinatorClock: clock,
      });
      const task = await front.createOnce({ ...base, orchestrationId: o });
      const [waiting] = await front.listRuns(task.id);
      // The worker's first read of a task after a claim fails (the database blinked).
      let claimedOnce = false;
      let failed = false;
      const blinking = storeWith(store, {
        claimRuns: async (...args: Parameters<TaskStore['claimRuns']>) => {
          const runs = await store.claimRuns(...args);
          if (runs.length > 0) claimedOnce = true;
          return runs;
        },
        getTask: async (id: string) => {
          if (claimedOnce && !failed) {
            failed = true;
            throw new Error('connection lost');
          }
          return store.getTask(id);
        },
      });
      const { node: worker, errors } = await nodeOver(blinking, { nodeId: 'worker' });
      await waitFor('the claim and the failed read', () => failed);
      // Past the lease: the claim must not have been left unrenewed and closed as node lost.
      for (let i = 0; i < 6; i += 1) await clock.advance(5_000);
      await waitFor('the run ends', async () => (await worker.getRun(waiting!.id)).status !== 'running');
      expect(await worker.getRun(waiting!.id)).toMatchObject({ status: 'success', nodeId: 'worker' });
      expect((await worker.readRunLog(waiting!.id)).map((l) => l.line)).toContain('claimed');
      expect(errors).toContain('coordinating runs with the other nodes');
    });

    it("a run's outcome the store refused once is stored by a later round, not lost to the lease", async () => {
      const o = orchestration('o1', "console.log('done');");
      let refused = false;
      const blinking = storeWith(store, {
        finishRun: async (...args: Parameters<TaskStore['finishRun']>) => {
          if (!refused && args[1].status === 'success') {
            refused = true;
            throw new Error('connection lost');
          }
          return store.finishRun(...args);
        },
      });
      const { node: s, errors } = await nodeOver(blinking, { nodeId: 'node-a' });
      const task = await s.createOnce({ ...base, orchestrationId: o });
      const [run] = await s.listRuns(task.id);
      await waitFor('the refused outcome', () => refused);
      for (let i = 0; i < 6; i += 1) await clock.advance(5_000);
      await waitFor('the run closed', async () => (await s.getRun(run!.id)).status !== 'running');
      expect(await s.getRun(run!.id)).toMatchObject({ status: 'success', exitCode: 0 });
      expect(errors).toContain(`recording the outcome of run ${run!.id}`);
    });

    it('keeps renewing its own leases through a round that closes many lost runs', async () => {
      const o = orchestration('o1', "console.log('up'); setInterval(() => {}, 1000);");
      // Each lost run takes a second of the (manual) clock to close: the round outlasts a lease.
      let slow = false;
      const slowStore = storeWith(store, {
        closeExpiredRun: async (...args: Parameters<TaskStore['closeExpiredRun']>) => {
          if (slow) await clock.advance(1_000);
          return store.closeExpiredRun(...args);
        },
      });
      const { service: s } = await service({
        nodeId: 'node-a',
        leaseMs: 15_000,
        store: slowStore,
        notifier,
        coordinatorClock: clock,
      });
      const mine = await s.createOnce({ ...base, orchestrationId: o });
      const [run] = await s.listRuns(mine.id);
      await waitFor('the run prints', async () => (await s.readRunLog(run!.id)).length > 0);
      // Node B died holding 20 runs whose leases have just ended.
      const lost: string[] = [];
      for (let i = 0; i < 20; i += 1) {
        const task = await store.createTask({
          ...base,
          name: `b${i}`,
          type: 'Temporary Run',
          orchestrationId: o,
          schedule: null,
          timezone: null,
          jsonArgs: {},
          timeout: 900,
        });
        const r = await store.createRun({
          taskId: task.id,
          tick: null,
          owner: { nodeId: 'node-b', leaseMs: 1 },
        });
        lost.push(r!.id);
      }
      slow = true;
      await clock.advance(3_000); // the next round
      await waitFor(
        'the lost runs closed',
        async () => (await store.getRun(lost.at(-1)!))?.status === 'failure',
      );
      slow = false;
      // 20 s passed in that round: node A's own run must still be held, not up for closing.
      expect((await store.expiredRuns()).map((r) => r.id)).not.toContain(run!.id);
      expect((await s.getRun(run!.id)).status).toBe('running');
    });

    it('keeps renewing the leases of runs it is stopping until their outcome is stored', async () => {
      orchestration('o1', "console.log('up');");
      // The run's package takes long to prepare (an archive fetched, an environment built).
      let release!: () => void;
      const prepared = new Promise<void>((r) => (release = r));
      let preparing = false;
      const { service: s } = await service({
        nodeId: 'node-a',
        leaseMs: 15_000,
        notifier,
        coordinatorClock: clock,
        checkPackage: async () => undefined,
        resolvePackage: async (id) => {
          preparing = true;
          await prepared;
          return packages.get(id)!;
        },
      });
      const task = await s.createOnce({ ...base, orchestrationId: 'o1' });
      const [run] = await s.listRuns(task.id);
      await waitFor('the run preparing', () => preparing);
      const stopping = s.stop();
      // Longer than the lease passes while the stop waits for the preparation.
      for (let i = 0; i < 5; i += 1) await clock.advance(5_000);
      expect((await store.expiredRuns()).map((r) => r.id)).not.toContain(run!.id);
      release();
      let done = false;
      void stopping.then(() => (done = true));
      // The runner's kill grace runs on the manual clock too.
      for (let i = 0; i < 100 && !done; i += 1) {
        await clock.advance(1_000);
        await new Promise((r) => setTimeout(r, 20));
      }
      await stopping;
      expect(await store.getRun(run!.id)).toMatchObject({ status: 'failure', reason: STOPPED_RUN_REASON });
    });

    it('an outcome the store keeps refusing holds up no other work of the round, and is given up after a lease', async () => {
      const o = orchestration('o1', "console.log('done');");
      const refusing = storeWith(store, {
        finishRun: async (...args: Parameters<TaskStore['finishRun']>) => {
          if (args[1].status === 'success') throw new Error('value refused');
          return store.finishRun(...args);
        },
      });
      const { node: s, errors } = await nodeOver(refusing, { nodeId: 'node-a', leaseMs: 15_000 });
      const task = await s.createOnce({ ...base, orchestrationId: o });
      const [run] = await s.listRuns(task.id);
      await waitFor('the refused outcome', () => errors.includes(`recording the outcome of run ${run!.id}`));
      // Node B died holding a run: this node's rounds still close it.
      const other = await startedContinuousTask(o);
      const lost = await store.createRun({
        taskId: other.id,
        tick: null,
        owner: { nodeId: 'node-b', leaseMs: 1 },
      });
      await clock.advance(3_000);
      await waitFor('the lost run closed', async () => (await store.getRun(lost!.id))?.status === 'failure');
      // A lease after the run ended, its outcome is given up: it leaves this node, whose lease
      // then runs out, and a round closes the run as lost.
      const givenUp = `recording the outcome of run ${run!.id} (given up: its lease will run out)`;
      for (let i = 0; i < 40 && (await store.getRun(run!.id))?.status === 'running'; i += 1) {
        await clock.advance(3_000);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(errors).toContain(givenUp);
      expect(await store.getRun(run!.id)).toMatchObject({
        status: 'failure',
        reason: nodeLostReason('node-a'),
      });
    });

    it('a refused outcome that another node has meanwhile closed restarts nothing here', async () => {
      const o = orchestration('o1', "console.log('once');");
      let first = true;
      const blinking = storeWith(store, {
        finishRun: async (...args: Parameters<TaskStore['finishRun']>) => {
          if (first && args[1].status === 'success') {
            first = false;
            // Node B closed the run as lost while this node's database was away.
            await store.finishRun(args[0], {
              status: 'failure',
              exitCode: null,
              reason: nodeLostReason('node-a'),
            });
            throw new Error('connection lost');
          }
          return store.finishRun(...args);
        },
      });
      const { node: s, errors } = await nodeOver(blinking, { nodeId: 'node-a', leaseMs: 15_000 });
      const task = await s.createContinuous({ ...base, orchestrationId: o });
      const [run] = await s.listRuns(task.id);
      await waitFor('the refused outcome', () => errors.includes(`recording the outcome of run ${run!.id}`));
      // The next round finds the run closed by node B, which restarted the task itself.
      for (let i = 0; i < 4; i += 1) await clock.advance(3_000);
      await new Promise((r) => setTimeout(r, 200));
      expect(await s.listRuns(task.id)).toHaveLength(1);
      expect((await s.getRun(run!.id)).reason).toBe(nodeLostReason('node-a'));
    });

    it("a continuous run's outcome committed but whose reply was lost still gets its restart backoff", async () => {
      const o = orchestration('o1', "console.error('crash'); process.exit(2);");
      let lost = 0;
      const blinking = storeWith(store, {
        finishRun: async (...args: Parameters<TaskStore['finishRun']>) => {
          const closed = await store.finishRun(...args);
          if (lost === 0 && args[1].status === 'failure') {
            lost += 1;
            // The commit went through; the connection broke before its reply arrived.
            throw new Error('Connection terminated unexpectedly');
          }
          return closed;
        },
      });
      const errors: string[] = [];
      const { service: s } = await service({
        nodeId: 'node-a',
        leaseMs: 15_000,
        store: blinking,
        notifier,
        coordinatorClock: clock,
        backoff: { initialMs: 1000, maxMs: 8000 },
        onError: (_err, context) => errors.push(context),
      });
      const task = await s.createContinuous({ ...base, orchestrationId: o });
      const [run] = await s.listRuns(task.id);
      await waitFor('the lost reply', () => errors.includes(`recording the outcome of run ${run!.id}`));
      expect((await s.getRun(run!.id)).status).toBe('failure');
      // The next round's write finds the run closed with this node's own outcome: the restart
      // is armed with the first step of the backoff, as if the first write had answered.
      await clock.advance(3_000);
      await restartArmed(1000);
      await clock.advance(1000);
      await waitFor(
        'run 2 ended',
        async () => (await s.listRuns(task.id, { status: 'failure' })).length === 2,
      );
      await restartArmed(2000);
      expect(await s.listRuns(task.id)).toHaveLength(2);
    });

    it('kill() through one node stops the run another node executes', async () => {
      const o = orchestration('o1', "console.log('up'); setInterval(() => {}, 1000);");
      const { service: runnerNode, runner } = await service({ nodeId: 'runs-it', notifier });
      const { service: other } = await service({ nodeId: 'kills-it', notifier });
      const task = await runnerNode.createOnce({ ...base, orchestrationId: o });
      const [run] = await other.listRuns(task.id);
      await waitFor('the run prints', async () => (await other.readRunLog(run!.id)).length > 0);
      expect(run?.nodeId).toBe('runs-it');
      expect(await other.kill(task.id)).toBe('pending_kill');
      await waitFor('the run is killed', async () => (await other.getRun(run!.id)).status === 'killed');
      await waitFor('the task is killed', async () => (await other.getTask(task.id)).status === 'killed');
      expect(runner.activeCount).toBe(0);
    });

    it('a scheduled task created through one node ticks once, on one of the two', async () => {
      const o = orchestration('o1', "console.log('tick');");
      const { service: one } = await service({ nodeId: 'one', notifier, coordinatorClock: clock });
      const { service: two } = await service({ nodeId: 'two', notifier, coordinatorClock: clock });
      const task = await one.createScheduled({ ...base, orchestrationId: o, schedule: '* * * * *' });
      // Node two learns of it by the message (or its next round) and arms it too.
      await new Promise((r) => setImmediate(r));
      await clock.advance(3_000);
      await clock.advance(MIN);
      await waitFor(
        'the tick ran',
        async () => (await two.listRuns(task.id, { status: 'success' })).length === 1,
      );
      const runs = await two.listRuns(task.id);
      expect(runs).toHaveLength(1);
      expect(['one', 'two']).toContain(runs[0]?.nodeId);
      expect(await one.listTicks(task.id)).toEqual([]);
    });

    it("a tick's runs past the creating node's free slots go to another node's, and a waiting one to the first slot freed", async () => {
      // Each run holds its slot until the gate file exists.
      const { id: o, open } = gatedOrchestration('o1');
      const node = (nodeId: string) =>
        service({ nodeId, notifier, coordinatorClock: clock, shareTickRuns: true }, { concurrency: 2 });
      const { service: one, runner: runnerOne } = await node('one');
      const { runner: runnerTwo } = await node('two');
      const tasks: TaskRecord[] = [];
      for (let i = 0; i < 5; i += 1)
        tasks.push(await one.createScheduled({ ...base, orchestrationId: o, schedule: '* * * * *' }));
      await new Promise((r) => setImmediate(r));
      await clock.advance(3_000);
      await clock.advance(MIN);
      // Five runs of one tick, two slots per node: each node runs two, the fifth waits for a node.
      await waitFor(
        'both nodes running two runs',
        () => runnerOne.activeCount === 2 && runnerTwo.activeCount === 2,
      );
      expect(runnerOne.queuedCount + runnerTwo.queuedCount).toBe(0);
      const running = await store.runningRuns();
      expect(running).toHaveLength(5);
      expect(running.filter((r) => r.nodeId === 'one')).toHaveLength(2);
      expect(running.filter((r) => r.nodeId === 'two')).toHaveLength(2);
      expect(running.filter((r) => r.nodeId === null)).toHaveLength(1);
      // The runs end; the waiting one is claimed as a slot frees, with no coordinator round
      // (the coordinator's clock does not move from here).
      open();
      await waitFor('every run succeeded', async () => {
        for (const t of tasks)
          if ((await one.listRuns(t.id, { status: 'success' })).length !== 1) return false;
        return true;
      });
      const ticks = new Set<number | null>();
      for (const t of tasks) {
        const runs = await one.listRuns(t.id);
        expect(runs).toHaveLength(1);
        expect(['one', 'two']).toContain(runs[0]?.nodeId);
        ticks.add(runs[0]?.tick ?? null);
      }
      expect(ticks.size).toBe(1);
    });

    it('Review: a run claimed on a message while a coordinator round renews leases is launched, not dropped and later closed as node lost', async () => {
      // Node A holds one long run, so its coordinator rounds renew leases.
      const { id: o, open } = gatedOrchestration('o1');
      let holdRenew = false;
      let renewEntered = (): void => undefined;
      let releaseRenew = (): void => undefined;
      const renewing = new Promise<void>((r) => (renewEntered = r));
      const released = new Promise<void>((r) => (releaseRenew = r));
      let trapTaskId: string | null = null;
      const racing = storeWith(store, {
        // The round's renewal: its list of held runs is read before the claim below lands,
        // its answer comes back after (a database round trip during which a message arrives).
        renewRunLeases: async (...args: Parameters<TaskStore['renewRunLeases']>) => {
          if (holdRenew) {
            holdRenew = false;
            renewEntered();
            await released;
          }
          return store.renewRunLeases(...args);
        },
        // The claim's launch reads the task: the round's renewal answers meanwhile.
        getTask: async (id: string) => {
          if (id === trapTaskId) {
            trapTaskId = null;
            releaseRenew();
            await new Promise((r) => setTimeout(r, 100));
          }
          return store.getTask(id);
        },
      });
      const { node: a } = await nodeOver(racing, {
        nodeId: 'node-a',
        leaseMs: 15_000,
        shareTickRuns: true,
      });
      const long = await a.createOnce({ ...base, orchestrationId: o });
      const [held] = await a.listRuns(long.id);
      await waitFor('the long run is held', async () => (await store.getRun(held!.id))?.nodeId === 'node-a');
      // A tick's run created waiting by another node (shareTickRuns), for any node's free slot.
      const { task: scheduled, run: waiting } = await waitingTickRun(
        orchestration('o2', "console.log('tick ran');"),
        T0 + 30_000,
      );
      // A coordinator round starts and sends its renewal; the other node's message arrives.
      holdRenew = true;
      trapTaskId = scheduled.id;
      void clock.advance(3_000);
      await renewing;
      await notifier.publish('quoll_task_runs', waiting.id);
      // Node A claimed the run: it must run it.
      for (let i = 0; i < 300; i += 1) {
        if ((await store.getRun(waiting.id))?.status !== 'running') break;
        await new Promise((r) => setTimeout(r, 10));
      }
      const after = await store.getRun(waiting.id);
      open();
      // (Bug: A dropped the claim; nobody renews it, so once its lease ends it is closed as
      // "node lost: node-a" although node A is alive and never ran it.)
      expect(after).toMatchObject({ nodeId: 'node-a', status: 'success' });
    });

    it('Review: a tick run a stopping node claimed but had not launched goes back to waiting, not failed as stopped', async () => {
      // A tick's run created waiting (shareTickRuns), for any node's free slot.
      const { task: scheduled, run: waiting } = await waitingTickRun(
        orchestration('o2', "console.log('tick ran');"),
        T0 + 30_000,
      );
      const nodeA: { current?: TaskService } = {};
      let ready = (): void => undefined;
      const aReady = new Promise<void>((r) => (ready = r));
      let stopping: Promise<void> | undefined;
      let trap = true;
      const stoppingStore = storeWith(store, {
        // Node A claimed the run and reads its task to launch it: SIGTERM arrives meanwhile.
        getTask: async (id: string) => {
          if (trap && id === scheduled.id) {
            trap = false;
            await aReady;
            stopping = nodeA.current?.stop();
          }
          return store.getTask(id);
        },
      });
      const { node } = await nodeOver(stoppingStore, {
        nodeId: 'node-a',
        leaseMs: 15_000,
        shareTickRuns: true,
      });
      nodeA.current = node;
      ready();
      await notifier.publish('quoll_task_runs', waiting.id);
      await waitFor('node A to stop', () => stopping !== undefined);
      await stopping;
      // The run never started anywhere: like a tick's run still waiting when a node stops, it
      // should stay waiting for the other nodes (docs/distributed.md), not end as a failure.
      expect(await store.getRun(waiting.id)).toMatchObject({ status: 'running', nodeId: null });
    });

    it('Review: a tick run left waiting while the whole cluster was down is not replayed hours later by the next node to start', async () => {
      const marker = join(root, 'ran');
      const o = orchestration(
        'o2',
        `import { writeFileSync } from 'node:fs'; writeFileSync(${JSON.stringify(marker)}, 'x');`,
      );
      // Two hours ago the last node created a tick's runs waiting and stopped (or died) before
      // any node claimed them; the cluster stayed down since.
      const { run: waiting } = await waitingTickRun(o, T0 - 30_000 - 120 * MIN);
      await nodeOver(store, { nodeId: 'node-a', leaseMs: 15_000, shareTickRuns: true });
      await clock.advance(3_000);
      await waitFor(
        'the stale run to be dealt with',
        async () => (await store.getRun(waiting.id))?.status !== 'running',
      );
      // Ticks missed while the server was down are recorded as missed, not replayed (spec §6).
      expect(existsSync(marker)).toBe(false);
      expect((await store.getRun(waiting.id))?.status).not.toBe('success');
    });

    /** A started every-minute task whose tick's run was created waiting two hours ago; the marker its run writes. */
    async function staleWaitingTickRun(): Promise<{ runId: string; marker: string }> {
      const marker = join(root, 'stale-ran');
      const o = orchestration(
        'o3',
        `import { writeFileSync } from 'node:fs'; writeFileSync(${JSON.stringify(marker)}, 'x');`,
      );
      const { run } = await waitingTickRun(o, T0 - 30_000 - 120 * MIN);
      return { runId: run.id, marker };
    }

    it("a tick's run left waiting while every node was down is closed at start as missed, saying so in its record and log", async () => {
      const { runId, marker } = await staleWaitingTickRun();
      const { node } = await nodeOver(store, { nodeId: 'node-a', leaseMs: 15_000, shareTickRuns: true });
      // Closed by start() itself, before any round could claim it.
      expect(await store.getRun(runId)).toMatchObject({
        status: 'failure',
        nodeId: null,
        reason: MISSED_WAITING_WHILE_DOWN,
      });
      const log = await node.readRunLog(runId);
      expect(log.at(-1)?.line).toContain(MISSED_WAITING_WHILE_DOWN);
      expect(existsSync(marker)).toBe(false);
    });

    it("a tick's run waiting while another node holds a live run is not closed at start: the cluster is up and busy, the run waits for a slot", async () => {
      const { runId, marker } = await staleWaitingTickRun();
      // Node B is up, every one of its slots taken (it holds a run with a live lease).
      const busy = await startedContinuousTask(orchestration('o4', 'setInterval(() => {}, 1000);'));
      await store.createRun({ taskId: busy.id, tick: null, owner: { nodeId: 'node-b', leaseMs: 60_000 } });
      await nodeOver(store, { nodeId: 'node-a', leaseMs: 15_000, shareTickRuns: true });
      // Node A has a free slot: it claims the waiting run and runs it.
      await waitFor(
        'the waiting run to be run',
        async () => (await store.getRun(runId))?.status !== 'running',
      );
      expect(await store.getRun(runId)).toMatchObject({ status: 'success', nodeId: 'node-a' });
      expect(existsSync(marker)).toBe(true);
    });
  });
});
