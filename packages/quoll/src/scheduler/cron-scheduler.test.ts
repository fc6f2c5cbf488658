import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../clock/index.js';
import { ManualClock } from '../clock/index.js';
import { openStore } from '../store/index.js';
import type { Stores } from '../store/index.js';
import { CronScheduler, MISSED_WHILE_DOWN, MISSED_WHILE_LATE, STORE_RETRY_MS } from './cron-scheduler.js';
import type { TaskRecord, TaskRunRecord, TaskStore } from './task-store.js';
import { storeWith } from '../store/conformance/store-with.js';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const MIN = 60_000;

let dir: string;
let stores: Stores;
let clock: ManualClock;
let store: TaskStore;
let created: TaskRunRecord[];
const schedulers: CronScheduler[] = [];

function newScheduler(c: Clock = clock): CronScheduler {
  const s = new CronScheduler({ store, clock: c, onRuns: (runs) => created.push(...runs) });
  schedulers.push(s);
  return s;
}

async function scheduledTask(schedule = '* * * * *'): Promise<TaskRecord> {
  return store.createTask({
    name: 'every minute',
    type: 'Scheduled Run',
    orchestrationId: 'o',
    workspaceId: 1,
    schedule,
    timezone: null,
    jsonArgs: {},
    timeout: 900,
  });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-cron-'));
  clock = new ManualClock(T0 + 30_000);
  stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') }, { clock });
  store = stores.tasks;
  created = [];
});
afterEach(async () => {
  for (const s of schedulers.splice(0)) await s.stop();
  await stores.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('CronScheduler', () => {
  it('creates one run per tick, keyed by the nominal tick', async () => {
    const task = await scheduledTask();
    const s = newScheduler();
    s.arm(task);
    expect(s.nextTickOf(task.id)).toBe(T0 + MIN);
    await clock.advance(29_999);
    expect(created).toHaveLength(0);
    await clock.advance(1);
    expect(created.map((r) => r.tick)).toEqual([T0 + MIN]);
    await store.finishRun(created[0]!.id, { status: 'success', exitCode: 0, reason: 'exit 0' });
    await clock.advance(MIN);
    expect(created.map((r) => r.tick)).toEqual([T0 + MIN, T0 + 2 * MIN]);
    expect((await store.listRuns(task.id)).map((r) => r.tick)).toEqual([T0 + 2 * MIN, T0 + MIN]);
  });

  it('records a tick as skipped while the previous run is still running', async () => {
    const task = await scheduledTask();
    newScheduler().arm(task);
    await clock.advance(30_000);
    await clock.advance(MIN);
    expect(created).toHaveLength(1);
    expect(await store.listTickRecords(task.id)).toEqual([
      expect.objectContaining({ tick: T0 + 2 * MIN, kind: 'skipped' }),
    ]);
    await store.finishRun(created[0]!.id, { status: 'success', exitCode: 0, reason: 'exit 0' });
    await clock.advance(MIN);
    expect(created.map((r) => r.tick)).toEqual([T0 + MIN, T0 + 3 * MIN]);
  });

  it('cannot double a tick when the task is armed twice or by a second scheduler on the same store', async () => {
    const task = await scheduledTask();
    const a = newScheduler();
    const b = newScheduler();
    a.arm(task);
    a.arm(task); // re-registration replaces the arming
    b.arm(task);
    expect(a.timerCount).toBe(1);
    await clock.advance(30_000);
    expect(created).toHaveLength(1);
    expect(await store.listRuns(task.id)).toHaveLength(1);
    // Both keep scheduling, and the next tick still gives one run.
    await store.finishRun(created[0]!.id, { status: 'success', exitCode: 0, reason: 'exit 0' });
    await clock.advance(MIN);
    expect((await store.listRuns(task.id)).map((r) => r.tick)).toEqual([T0 + 2 * MIN, T0 + MIN]);
  });

  it('a scheduler starting just after a tick a peer is about to fire does not record it missed; the tick runs once', async () => {
    const task = await scheduledTask();
    const owner = { nodeId: 'b', leaseMs: 15_000 };
    // Node B is running and armed for T0+1min; its timer has not fired yet.
    const b = new CronScheduler({
      store,
      clock,
      owner,
      peerGraceMs: 15_000,
      onRuns: (r) => created.push(...r),
    });
    schedulers.push(b);
    b.arm(task);
    // Node A starts 1 ms after the tick (on its own clock) and recovers the task.
    const aClock = new ManualClock(T0 + MIN + 1);
    const a = new CronScheduler({
      store,
      clock: aClock,
      owner: { nodeId: 'a', leaseMs: 15_000 },
      peerGraceMs: 15_000,
      onRuns: (r) => created.push(...r),
    });
    schedulers.push(a);
    await a.recoverAndArm((await store.getTask(task.id))!);
    expect(await store.listTickRecords(task.id)).toEqual([]);
    // B fires its tick, then A its own arming of the same tick: one run, whoever came first.
    await clock.advance(30_000);
    await aClock.advance(0);
    expect(created.map((r) => r.tick)).toEqual([T0 + MIN]);
    expect((await store.listRuns(task.id)).map((r) => r.tick)).toEqual([T0 + MIN]);
    expect(await store.listTickRecords(task.id)).toEqual([]);
  });

  it('a peer that never fires a tick leaves it to a scheduler that started within the grace, late', async () => {
    const task = await scheduledTask();
    await clock.advance(35_000); // T0+1min passed 5 s ago, and nobody fired it
    const a = new CronScheduler({
      store,
      clock,
      owner: { nodeId: 'a', leaseMs: 15_000 },
      peerGraceMs: 15_000,
      onRuns: (r) => created.push(...r),
    });
    schedulers.push(a);
    await a.recoverAndArm((await store.getTask(task.id))!);
    await clock.advance(0);
    expect(created.map((r) => r.tick)).toEqual([T0 + MIN]);
    expect(await store.listTickRecords(task.id)).toEqual([]);
  });

  it('on a cluster, a boundary the store refused is tried again within the grace', async () => {
    const task = await scheduledTask();
    let refused = 0;
    const refusing = storeWith(store, {
      createTickRuns: async (...args: Parameters<TaskStore['createTickRuns']>) => {
        if (refused === 0) {
          refused += 1;
          throw new Error('canceling statement due to lock timeout');
        }
        return store.createTickRuns(...args);
      },
    });
    const errors: unknown[] = [];
    const s = new CronScheduler({
      store: refusing,
      clock,
      owner: { nodeId: 'a', leaseMs: 15_000 },
      peerGraceMs: 15_000,
      onError: (err) => errors.push(err),
      onRuns: (r) => created.push(...r),
    });
    schedulers.push(s);
    s.arm(task);
    await clock.advance(30_000);
    expect(refused).toBe(1);
    expect(created).toHaveLength(0);
    await clock.advance(STORE_RETRY_MS);
    expect(created.map((r) => r.tick)).toEqual([T0 + MIN]);
    expect(errors).toHaveLength(1);
    expect(s.nextTickOf(task.id)).toBe(T0 + 2 * MIN);
  });

  /** A store that refuses the first `times` boundaries (all when Infinity), and a scheduler on it. */
  function refusingScheduler(times: number, peerGraceMs = 15_000) {
    const seen = { refused: 0, errors: [] as string[], ticks: [] as number[], recovered: [] as string[] };
    const refusing = storeWith(store, {
      createTickRuns: async (...args: Parameters<TaskStore['createTickRuns']>) => {
        if (seen.refused < times) {
          seen.refused += 1;
          throw new Error('canceling statement due to lock timeout');
        }
        return store.createTickRuns(...args);
      },
    });
    const s = new CronScheduler({
      store: refusing,
      clock,
      owner: { nodeId: 'a', leaseMs: 15_000 },
      peerGraceMs,
      onError: (_err, context) => seen.errors.push(context),
      onTick: (tick) => seen.ticks.push(tick),
      onRecovered: (message) => seen.recovered.push(message),
      onRuns: (r) => created.push(...r),
    });
    schedulers.push(s);
    return { s, seen };
  }

  it('reports a boundary refused again and again once, and once when the store takes it', async () => {
    const task = await scheduledTask();
    const { s, seen } = refusingScheduler(5);
    s.arm(task);
    await clock.advance(30_000);
    for (let i = 0; i < 5; i++) await clock.advance(STORE_RETRY_MS);
    expect(seen.refused).toBe(5);
    expect(created.map((r) => r.tick)).toEqual([T0 + MIN]);
    expect(seen.ticks).toEqual([T0 + MIN]);
    expect(seen.errors).toHaveLength(1);
    expect(seen.errors[0]).toContain('reported once');
    expect(seen.recovered).toHaveLength(1);
    expect(seen.recovered[0]).toContain('at try 6');
    expect(s.nextTickOf(task.id)).toBe(T0 + 2 * MIN);
    await store.finishRun(created[0]!.id, { status: 'success', exitCode: 0, reason: 'exit 0' });
    await clock.advance(MIN);
    expect(created.map((r) => r.tick)).toEqual([T0 + MIN, T0 + 2 * MIN]);
    expect(seen.ticks).toEqual([T0 + MIN, T0 + 2 * MIN]);
    expect(seen.errors).toHaveLength(1);
    expect(seen.recovered).toHaveLength(1);
  });

  it('reports a boundary given up after its tries once more, and the next boundary afresh', async () => {
    const task = await scheduledTask();
    const { s, seen } = refusingScheduler(Infinity, 4_000);
    s.arm(task);
    await clock.advance(30_000);
    for (let i = 0; i < 10; i++) await clock.advance(STORE_RETRY_MS);
    // Tried at +0, +1, +2 and +3 s (each retry still younger than the 4 s grace), then given up.
    expect(seen.refused).toBe(4);
    expect(seen.ticks).toEqual([T0 + MIN]);
    expect(seen.errors).toHaveLength(2);
    expect(seen.errors[1]).toContain('given up after 4 tries');
    expect(seen.recovered).toEqual([]);
    expect(s.nextTickOf(task.id)).toBe(T0 + 2 * MIN);
    // The next boundary is a new one: its first failure is reported again.
    await clock.advance(50_000);
    expect(seen.ticks).toEqual([T0 + MIN, T0 + 2 * MIN]);
    expect(seen.errors).toHaveLength(3);
    expect(seen.errors[2]).toContain('reported once');
    expect(created).toEqual([]);
  });

  it('records ticks missed while no scheduler ran and does not replay them', async () => {
    const task = await scheduledTask();
    const first = newScheduler();
    first.arm(task);
    await clock.advance(30_000);
    await store.finishRun(created[0]!.id, { status: 'success', exitCode: 0, reason: 'exit 0' });
    await first.stop(); // the server goes down after the T0+1min tick
    await clock.advance(4 * MIN + 10_000); // ticks +2..+5 min pass unseen
    const restarted = newScheduler();
    await restarted.recoverAndArm((await store.getTask(task.id))!);
    expect(created).toHaveLength(1);
    const missed = await store.listTickRecords(task.id);
    expect(missed.map((m) => [m.tick, m.kind, m.reason])).toEqual(
      [5, 4, 3, 2].map((m) => [T0 + m * MIN, 'missed', MISSED_WHILE_DOWN]),
    );
    expect(restarted.nextTickOf(task.id)).toBe(T0 + 6 * MIN);
    await clock.advance(50_000);
    expect(created.map((r) => r.tick)).toEqual([T0 + MIN, T0 + 6 * MIN]);
  });

  it('counts missed ticks from creation for a task that never ticked', async () => {
    const task = await scheduledTask('*/10 * * * *'); // created at T0+30s
    await clock.advance(25 * MIN);
    await newScheduler().recoverAndArm(task);
    expect((await store.listTickRecords(task.id)).map((m) => m.tick)).toEqual([T0 + 20 * MIN, T0 + 10 * MIN]);
  });

  it('records the ticks that pass while it is held up as missed, then keeps the schedule', async () => {
    // A clock whose timers fire 3 minutes late, as when the machine sleeps.
    const late: Clock = {
      now: () => clock.now(),
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms + 3 * MIN),
      clearTimeout: (h) => clock.clearTimeout(h),
    };
    const task = await scheduledTask();
    newScheduler(late).arm(task);
    await clock.advance(30_000 + 3 * MIN);
    expect(created.map((r) => r.tick)).toEqual([T0 + MIN]);
    expect((await store.listTickRecords(task.id)).map((m) => [m.tick, m.reason])).toEqual([
      [T0 + 4 * MIN, MISSED_WHILE_LATE],
      [T0 + 3 * MIN, MISSED_WHILE_LATE],
      [T0 + 2 * MIN, MISSED_WHILE_LATE],
    ]);
  });

  it('starts no run for a killed task and stops scheduling it', async () => {
    const task = await scheduledTask();
    const s = newScheduler();
    s.arm(task);
    await store.setTaskStatus(task.id, 'pending_kill');
    await store.markKilled(task.id);
    await clock.advance(5 * MIN);
    expect(created).toHaveLength(0);
    expect(s.armedCount).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('disarm stops a task even while its boundary is being processed', async () => {
    const task = await scheduledTask();
    const s = new CronScheduler({
      store,
      clock,
      onRuns: (runs) => {
        created.push(...runs);
        s.disarm(task.id);
      },
    });
    schedulers.push(s);
    s.arm(task);
    await clock.advance(30_000);
    expect(created).toHaveLength(1);
    expect(s.armedCount).toBe(0);
    await clock.advance(5 * MIN);
    expect(created).toHaveLength(1);
  });

  it('creates 1000 runs at one boundary with one timer and none doubled', async () => {
    const tasks: TaskRecord[] = [];
    for (let i = 0; i < 1000; i++) tasks.push(await scheduledTask());
    const a = newScheduler();
    const b = newScheduler(); // a second registration of every task must not double anything
    for (const t of tasks) {
      a.arm(t);
      b.arm(t);
    }
    expect(a.timerCount).toBe(1);
    await clock.advance(30_000);
    expect(created).toHaveLength(1000);
    expect(new Set(created.map((r) => r.taskId)).size).toBe(1000);
    expect(created.every((r) => r.tick === T0 + MIN)).toBe(true);
    expect(await store.runningRuns()).toHaveLength(1000);
  });

  it('stop() clears every timer and arms nothing afterwards', async () => {
    const s = newScheduler();
    for (const schedule of ['* * * * *', '*/5 * * * *', '0 3 * * *']) s.arm(await scheduledTask(schedule));
    expect(clock.pendingTimers).toBe(3);
    await s.stop();
    expect(clock.pendingTimers).toBe(0);
    s.arm(await scheduledTask());
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(10 * MIN);
    expect(created).toHaveLength(0);
  });
});
