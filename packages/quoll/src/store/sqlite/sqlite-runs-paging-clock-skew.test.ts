import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../clock/index.js';
import { openStore } from '../open-store.js';
import type { TaskRunRecord } from '../../scheduler/index.js';

// created_at is the creating node's wall clock (nowIso()); two nodes of a cluster on one database,
// one 7 s behind, show what paging does and does not guarantee (docs/orchestrations.md):
// every run that existed when paging started is listed exactly once, in order; a run created
// meanwhile by a node in step with the reader is on the newest page; one created by a node whose
// clock lags may sort into pages already read (a fresh walk lists it).

const root = mkdtempSync(join(tmpdir(), 'quoll-runs-paging-skew-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

describe('runs paging with two nodes whose clocks differ', () => {
  it('runs that existed when paging started are listed once each; a lagging node’s new run sorts into read pages', async () => {
    const path = join(root, 'a.db');
    const clockA = new ManualClock(T0 + 60_000);
    const a = await openStore({ kind: 'sqlite', path }, { clock: clockA });
    // Node B: same database, clock 7 s behind node A.
    const clockB = new ManualClock(T0 + 60_000 - 7_000);
    const b = await openStore({ kind: 'sqlite', path }, { clock: clockB });
    try {
      const t = await a.tasks.createTask({
        name: 'fast',
        type: 'Continuous Run',
        orchestrationId: 'o',
        workspaceId: 1,
        schedule: null,
        timezone: null,
        jsonArgs: {},
        timeout: 900,
      });
      const runOn = async (s: typeof a): Promise<TaskRunRecord> => {
        const r = await s.tasks.createRun({ taskId: t.id, tick: null });
        if (r === null) throw new Error('no run');
        await s.tasks.finishRun(r.id, { status: 'success', exitCode: 0, reason: 'x' });
        return r;
      };
      // 20 runs on node A, one a second.
      for (let i = 0; i < 20; i++) {
        await runOn(a);
        await clockA.advance(1000);
        await clockB.advance(1000);
      }
      const atStart = (await a.tasks.listRuns(t.id, {})).map((r) => r.id);
      // A reader pages 5 at a time: pages 1 and 2.
      const seen: string[] = [];
      let before: { createdAt: string; id: string } | undefined;
      const pageOf = async (): Promise<TaskRunRecord[]> => {
        const runs = await a.tasks.listRuns(t.id, { limit: 5, ...(before ? { before } : {}) });
        seen.push(...runs.map((r) => r.id));
        const last = runs.at(-1);
        if (last) before = { createdAt: last.createdAt, id: last.id };
        return runs;
      };
      await pageOf();
      await pageOf();
      // Meanwhile node A (in step) and node B (7 s behind) each start a run.
      const inStep = await runOn(a);
      const lagging = await runOn(b);
      // The reader pages on to the end, then re-reads the newest page for runs created meanwhile.
      while ((await pageOf()).length === 5);
      const newest = (await a.tasks.listRuns(t.id, { limit: 5 })).map((r) => r.id);
      // Guaranteed: every run that existed when paging started, once each, newest first.
      expect(seen.filter((id) => atStart.includes(id))).toEqual(atStart);
      expect(new Set(seen).size).toBe(seen.length);
      // Guaranteed: a run created meanwhile by a node in step with the others is on the newest page.
      expect(newest).toContain(inStep.id);
      // Documented, not guaranteed: the lagging node's run sorts into pages already read (here
      // page 2), so neither the rest of the walk nor the newest page has it; a fresh walk does.
      expect([...seen, ...newest]).not.toContain(lagging.id);
      expect((await a.tasks.listRuns(t.id, {})).map((r) => r.id)).toContain(lagging.id);
    } finally {
      await b.close();
      await a.close();
    }
  });
});
