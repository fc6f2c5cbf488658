import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../clock/index.js';
import { openStore } from '../open-store.js';
import type { TaskRunRecord } from '../../scheduler/index.js';

// Review (runs lane): docs/orchestrations.md and the API say "Runs created meanwhile are newer
// than any page, so paging on never loses or repeats a run". created_at is the creating node's
// wall clock (nowIso()); two nodes of a cluster on one database, one 7 s behind, break that:
// a run node B creates while a reader pages lands inside pages already read and is neither in
// the rest of the walk nor on the newest page the reader re-reads.

const root = mkdtempSync(join(tmpdir(), 'review-runs-skew-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

describe('review: runs paging with two nodes whose clocks differ', () => {
  it('a run created meanwhile is on the walk or on the newest page', async () => {
    const path = join(root, 'a.db');
    const clockA = new ManualClock(T0 + 60_000);
    const a = await openStore({ kind: 'sqlite', path }, { clock: clockA });
    // Node B: same database, clock 7 s behind node A.
    const clockB = new ManualClock(T0 + 60_000 - 7_000);
    const b = await openStore({ kind: 'sqlite', path }, { clock: clockB });
    try {
      const t = await a.tasks.createTask({
        name: 'fast', type: 'Continuous Run', orchestrationId: 'o', workspaceId: 1,
        schedule: null, timezone: null, jsonArgs: {}, timeout: 900,
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
      // Meanwhile node B (7 s behind) starts a run.
      const meanwhile = await runOn(b);
      // The reader pages on to the end, then re-reads the newest page for runs created meanwhile.
      while ((await pageOf()).length === 5);
      const newest = (await a.tasks.listRuns(t.id, { limit: 5 })).map((r) => r.id);
      expect([...seen, ...newest]).toContain(meanwhile.id);
    } finally {
      await b.close();
      await a.close();
    }
  });
});
