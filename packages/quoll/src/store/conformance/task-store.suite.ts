import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../clock/index.js';
import type { NewTask, TaskStore } from '../../scheduler/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores } from './make-stores.js';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const task = (over: Partial<NewTask> = {}): NewTask => ({
  name: 'nightly',
  type: 'Scheduled Run',
  orchestrationId: 'orch-1',
  workspaceId: 7,
  schedule: '* * * * *',
  timezone: null,
  jsonArgs: { a: 1 },
  timeout: 900,
  ...over,
});

/** The {@link TaskStore} contract, run against one backend. */
export function taskStoreSuite(backend: string, makeStores: MakeStores): void {
  describe(`${backend}: TaskStore`, () => {
    let stores: Stores;
    let store: TaskStore;
    let clock: ManualClock;

    beforeEach(async () => {
      clock = new ManualClock(T0);
      stores = await makeStores({ clock });
      store = stores.tasks;
    });
    afterEach(async () => {
      await stores.close();
    });

    it('creates a task as pending with its fields and no last run', async () => {
      const t = await store.createTask(task());
      expect(t).toMatchObject({
        name: 'nightly',
        type: 'Scheduled Run',
        status: 'pending',
        workspaceId: 7,
        orchestrationId: 'orch-1',
        schedule: '* * * * *',
        jsonArgs: { a: 1 },
        timeout: 900,
        killed: false,
        lastRunStatus: 'unknown',
        lastTick: null,
        createdAt: new Date(T0).toISOString(),
      });
      expect(await store.getTask(t.id)).toEqual(t);
      expect(await store.getTask('nope')).toBeNull();
    });

    it('creates at most one run per (task, tick), even when asked twice', async () => {
      const t = await store.createTask(task());
      const first = await store.createRun({ taskId: t.id, tick: T0 });
      expect(first).not.toBeNull();
      await store.finishRun(first!.id, { status: 'success', exitCode: 0, reason: 'exit 0' });
      expect(await store.createRun({ taskId: t.id, tick: T0 })).toBeNull();
      const batch = await store.createTickRuns([{ taskId: t.id, tick: T0 }]);
      expect(batch).toEqual([{ taskId: t.id, tick: T0, outcome: 'duplicate' }]);
      expect(await store.listRuns(t.id)).toHaveLength(1);
    });

    it('records a tick as skipped when the previous run is still running, and never runs it later', async () => {
      const t = await store.createTask(task());
      const [a] = await store.createTickRuns([{ taskId: t.id, tick: T0 }]);
      expect(a?.outcome).toBe('created');
      const [b] = await store.createTickRuns([{ taskId: t.id, tick: T0 + 60_000 }]);
      expect(b?.outcome).toBe('skipped');
      const ticks = await store.listTickRecords(t.id);
      expect(ticks.map((r) => [r.tick, r.kind])).toEqual([[T0 + 60_000, 'skipped']]);
      expect(ticks[0]?.reason).toContain('still running');
      if (a?.outcome === 'created')
        await store.finishRun(a.run.id, { status: 'success', exitCode: 0, reason: 'exit 0' });
      const [again] = await store.createTickRuns([{ taskId: t.id, tick: T0 + 60_000 }]);
      expect(again?.outcome).toBe('duplicate');
      expect((await store.getTask(t.id))?.lastTick).toBe(T0 + 60_000);
    });

    it('creates no run for a task being killed or killed', async () => {
      const t = await store.createTask(task({ type: 'Continuous Run', schedule: null }));
      await store.setTaskStatus(t.id, 'pending_kill');
      expect(await store.createRun({ taskId: t.id, tick: null })).toBeNull();
      const u = await store.createTask(task());
      await store.markKilled(u.id);
      expect(await store.createTickRuns([{ taskId: u.id, tick: T0 }])).toEqual([
        { taskId: u.id, tick: T0, outcome: 'inactive' },
      ]);
      expect(await store.listRuns(t.id)).toEqual([]);
      expect(await store.listRuns(u.id)).toEqual([]);
    });

    it('keeps one running run per continuous task and one run ever per run-once task', async () => {
      const c = await store.createTask(task({ type: 'Continuous Run', schedule: null }));
      const r1 = await store.createRun({ taskId: c.id, tick: null });
      expect(await store.createRun({ taskId: c.id, tick: null })).toBeNull();
      await store.finishRun(r1!.id, { status: 'failure', exitCode: 1, reason: 'exit 1' });
      expect(await store.createRun({ taskId: c.id, tick: null })).not.toBeNull();

      const o = await store.createTask(task({ type: 'Temporary Run', schedule: null }));
      const only = await store.createRun({ taskId: o.id, tick: null });
      await store.finishRun(only!.id, { status: 'success', exitCode: 0, reason: 'exit 0' });
      expect(await store.createRun({ taskId: o.id, tick: null })).toBeNull();
    });

    it('does not let a kill be undone by a later status change', async () => {
      const t = await store.createTask(task());
      await store.setTaskStatus(t.id, 'pending_kill');
      expect(await store.setTaskStatus(t.id, 'started')).toBeNull();
      expect((await store.getTask(t.id))?.status).toBe('pending_kill');
      const killed = await store.markKilled(t.id);
      expect(killed).toMatchObject({ status: 'killed', killed: true });
      expect(await store.setTaskStatus(t.id, 'pending_kill')).toBeNull();
    });

    it('a status reason holds while the task lives; a kill clears it and a late one is not set', async () => {
      const t = await store.createTask(task({ type: 'Continuous Run', schedule: null }));
      await store.setTaskStatusReason(t.id, 'crash loop: the last 5 runs failed');
      expect((await store.getTask(t.id))?.statusReason).toBe('crash loop: the last 5 runs failed');
      await store.setTaskStatus(t.id, 'pending_kill');
      await store.setTaskStatusReason(t.id, 'crash loop: again');
      expect((await store.getTask(t.id))?.statusReason).toBe('crash loop: the last 5 runs failed');
      expect(await store.markKilled(t.id)).toMatchObject({ status: 'killed', statusReason: null });
      await store.setTaskStatusReason(t.id, 'crash loop: after the kill');
      expect((await store.getTask(t.id))?.statusReason).toBeNull();
    });

    it('finishes a run once; a finished run never changes', async () => {
      const t = await store.createTask(task({ type: 'Temporary Run', schedule: null }));
      const run = await store.createRun({ taskId: t.id, tick: null });
      await clock.advance(1500);
      const done = await store.finishRun(run!.id, { status: 'failure', exitCode: 3, reason: 'exit 3' });
      expect(done).toMatchObject({ status: 'failure', exitCode: 3, reason: 'exit 3' });
      expect(await store.finishRun(run!.id, { status: 'success', exitCode: 0, reason: 'exit 0' })).toBeNull();
      expect((await store.getRun(run!.id))?.status).toBe('failure');
      expect(await store.lastRunStatus(t.id)).toBe('failure');
      expect((await store.getTask(t.id))?.lastRunStatus).toBe('failure');
    });

    it('lists runs newest first with limit and status filters', async () => {
      const t = await store.createTask(task());
      for (let i = 0; i < 4; i++) {
        const [o] = await store.createTickRuns([{ taskId: t.id, tick: T0 + i * 60_000 }]);
        if (o?.outcome !== 'created') throw new Error('expected a run');
        await store.finishRun(
          o.run.id,
          i % 2 === 0
            ? { status: 'success', exitCode: 0, reason: 'exit 0' }
            : { status: 'failure', exitCode: 1, reason: 'exit 1' },
        );
        await clock.advance(60_000);
      }
      const all = await store.listRuns(t.id);
      expect(all.map((r) => r.tick)).toEqual([3, 2, 1, 0].map((i) => T0 + i * 60_000));
      expect((await store.listRuns(t.id, { limit: 2 })).map((r) => r.tick)).toEqual([
        T0 + 180_000,
        T0 + 120_000,
      ]);
      expect((await store.listRuns(t.id, { status: 'failure' })).map((r) => r.tick)).toEqual([
        T0 + 180_000,
        T0 + 60_000,
      ]);
      expect(await store.listRuns(t.id, { status: 'all' })).toHaveLength(4);
      expect(await store.runningRuns()).toEqual([]);
    });

    it('pages runs newest first after a run, ties on the creation time broken by id, whatever arrives meanwhile', async () => {
      const t = await store.createTask(task());
      const tick = async (i: number): Promise<void> => {
        const [o] = await store.createTickRuns([{ taskId: t.id, tick: T0 + i * 60_000 }]);
        if (o?.outcome !== 'created') throw new Error('expected a run');
        await store.finishRun(o.run.id, {
          status: i % 3 === 0 ? 'failure' : 'success',
          exitCode: 0,
          reason: 'x',
        });
      };
      // 25 runs, three at each instant: pages must split ties without losing or repeating one.
      for (let i = 0; i < 25; i++) {
        await tick(i);
        if (i % 3 === 2) await clock.advance(1000);
      }
      const all = (await store.listRuns(t.id)).map((r) => r.id);
      expect(all).toHaveLength(25);
      const paged: string[] = [];
      let before: { createdAt: string; id: string } | undefined;
      for (let page = 0; page < 10; page++) {
        const runs = await store.listRuns(t.id, { limit: 7, ...(before ? { before } : {}) });
        paged.push(...runs.map((r) => r.id));
        if (page === 1) {
          // New runs arrive between pages: they are newer, so the next page goes on where this one ended.
          await clock.advance(1000);
          for (let i = 100; i < 104; i++) await tick(i);
        }
        if (runs.length < 7) break;
        const last = runs[runs.length - 1]!;
        before = { createdAt: last.createdAt, id: last.id };
      }
      expect(paged).toEqual(all);
      // The newest page now starts with the runs that arrived.
      const first = await store.listRuns(t.id, { limit: 4 });
      expect(first.map((r) => r.tick)).toEqual([103, 102, 101, 100].map((i) => T0 + i * 60_000));
      // With a status filter, the page after a run holds only older runs of that status.
      const failures = await store.listRuns(t.id, { status: 'failure' });
      const after = await store.listRuns(t.id, {
        status: 'failure',
        before: { createdAt: failures[1]!.createdAt, id: failures[1]!.id },
      });
      expect(after.map((r) => r.id)).toEqual(failures.slice(2).map((r) => r.id));
      // After the oldest run: nothing.
      const oldest = (await store.listRuns(t.id)).at(-1)!;
      expect(await store.listRuns(t.id, { before: { createdAt: oldest.createdAt, id: oldest.id } })).toEqual(
        [],
      );
    });

    it('hides killed tasks unless asked and filters by workspace, newest first', async () => {
      const a = await store.createTask(task({ workspaceId: 1 }));
      await clock.advance(1000);
      const b = await store.createTask(task({ workspaceId: 2 }));
      await clock.advance(1000);
      const c = await store.createTask(task({ workspaceId: 1 }));
      await store.markKilled(b.id);
      expect((await store.listTasks()).map((t) => t.id)).toEqual([c.id, a.id]);
      expect((await store.listTasks({ killed: true })).map((t) => t.id)).toEqual([c.id, b.id, a.id]);
      expect((await store.listTasks({ killed: true, workspaceId: 2 })).map((t) => t.id)).toEqual([b.id]);
    });

    it('records missed ticks, advances lastTick and never moves it back', async () => {
      const t = await store.createTask(task());
      await store.recordMissedTicks(t.id, [T0, T0 + 60_000], 'missed: down');
      expect((await store.getTask(t.id))?.lastTick).toBe(T0 + 60_000);
      await store.advanceLastTick(t.id, T0);
      expect((await store.getTask(t.id))?.lastTick).toBe(T0 + 60_000);
      expect((await store.listTickRecords(t.id)).map((r) => [r.tick, r.kind])).toEqual([
        [T0 + 60_000, 'missed'],
        [T0, 'missed'],
      ]);
      // A missed tick can no longer get a run.
      expect(await store.createRun({ taskId: t.id, tick: T0 })).toBeNull();
    });

    it('never records a tick that has a run as missed (a peer ran it while this node looked)', async () => {
      const t = await store.createTask(task());
      const [made] = await store.createTickRuns([{ taskId: t.id, tick: T0 }]);
      expect(made?.outcome).toBe('created');
      await store.recordMissedTicks(t.id, [T0, T0 + 60_000], 'missed: down');
      expect((await store.listTickRecords(t.id)).map((r) => [r.tick, r.kind])).toEqual([
        [T0 + 60_000, 'missed'],
      ]);
      expect((await store.getTask(t.id))?.lastTick).toBe(T0 + 60_000);
    });

    it('records a run pid and lists running runs oldest first', async () => {
      const a = await store.createTask(task({ type: 'Continuous Run', schedule: null }));
      await clock.advance(10);
      const b = await store.createTask(task({ type: 'Continuous Run', schedule: null }));
      const ra = await store.createRun({ taskId: a.id, tick: null });
      await clock.advance(10);
      const rb = await store.createRun({ taskId: b.id, tick: null });
      await store.setRunPid(ra!.id, 4242);
      expect((await store.runningRuns()).map((r) => [r.id, r.pid])).toEqual([
        [ra!.id, 4242],
        [rb!.id, null],
      ]);
    });

    it('creates 1000 tick runs in one call', async () => {
      const ids = (await Promise.all(Array.from({ length: 1000 }, () => store.createTask(task())))).map(
        (t) => t.id,
      );
      const out = await store.createTickRuns(ids.map((taskId) => ({ taskId, tick: T0 })));
      expect(out.filter((o) => o.outcome === 'created')).toHaveLength(1000);
      expect(await store.runningRuns()).toHaveLength(1000);
      const again = await store.createTickRuns(ids.map((taskId) => ({ taskId, tick: T0 })));
      expect(again.every((o) => o.outcome === 'duplicate')).toBe(true);
    });
  });
}
