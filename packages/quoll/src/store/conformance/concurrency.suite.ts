import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../clock/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores, OpenPeer } from './make-stores.js';

/**
 * Two processes (nodes) on one database, each with its own connection(s), racing on the
 * steps that used to be check-then-act in application code. Each test fails when a store
 * relies on being the only writer.
 */
export function concurrencySuite(backend: string, makeStores: MakeStores, openPeer: OpenPeer): void {
  describe(`${backend}: several writers`, () => {
    const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
    let a: Stores;
    let b: Stores;
    let clock: ManualClock;

    beforeEach(async () => {
      clock = new ManualClock(T0);
      a = await makeStores({ clock });
      b = await openPeer(a, { clock });
    });
    afterEach(async () => {
      await b.close();
      await a.close();
    });

    it('nodes starting together make one default workspace', async () => {
      const all = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 === 0 ? a : b).workspaces.ensureDefaultWorkspace('default', 't'),
        ),
      );
      expect(new Set(all.map((w) => w.id)).size).toBe(1);
      expect(await a.workspaces.listWorkspaces()).toHaveLength(1);
    });

    it('two nodes building one pipeline make one', async () => {
      const ws = (await a.workspaces.ensureDefaultWorkspace('default', 't')).id;
      const all = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).pipelines.ensurePipeline(ws, 'p', 't')),
      );
      expect(all.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(all.map((r) => r.pipeline.id)).size).toBe(1);
    });

    it('concurrent deploys form one chain: each replaced exactly the deployment before it', async () => {
      const ws = (await a.workspaces.ensureDefaultWorkspace('default', 't')).id;
      const { pipeline } = await a.pipelines.ensurePipeline(ws, 'p', 't');
      const versions = Array.from({ length: 8 }, (_, i) => `v${i}`);
      const results = await Promise.all(
        versions.map((version, i) =>
          (i % 2 === 0 ? a : b).pipelines.recordDeploy({
            pipelineId: pipeline.id,
            version,
            // Different steps each, so none reuses the version before it.
            steps: [{ model: { name: 'm', version, sha: 's' } }],
            config: {},
            at: 't',
          }),
        ),
      );
      // Serialisable: one deploy saw nothing before it, and the "previous" links form a chain.
      const previous = results.map((r) => r.previous?.version ?? null);
      expect(previous.filter((p) => p === null)).toHaveLength(1);
      expect(new Set(previous).size).toBe(versions.length);
      const current = (await b.pipelines.getDeployment(pipeline.id))?.version;
      expect(previous).not.toContain(current);
    });

    it('a continuous task started from two nodes at once gets one running run', async () => {
      for (let round = 0; round < 5; round++) {
        const task = await a.tasks.createTask({
          name: `c${round}`,
          type: 'Continuous Run',
          orchestrationId: 'o',
          workspaceId: 1,
          schedule: null,
          timezone: null,
          jsonArgs: {},
          timeout: null,
        });
        const made = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            (i % 2 === 0 ? a : b).tasks.createRun({ taskId: task.id, tick: null }),
          ),
        );
        expect(made.filter((r) => r !== null)).toHaveLength(1);
        expect(await a.tasks.listRuns(task.id, { status: 'running' })).toHaveLength(1);
      }
    });

    it('a cron boundary handled by two nodes at once creates each (task, tick) run once', async () => {
      const tasks = [];
      for (let i = 0; i < 20; i++) {
        tasks.push(
          await a.tasks.createTask({
            name: `s${i}`,
            type: 'Scheduled Run',
            orchestrationId: 'o',
            workspaceId: 1,
            schedule: '* * * * *',
            timezone: null,
            jsonArgs: {},
            timeout: 60,
          }),
        );
      }
      const items = tasks.map((t) => ({ taskId: t.id, tick: T0 }));
      const [fromA, fromB] = await Promise.all([
        a.tasks.createTickRuns(items),
        b.tasks.createTickRuns([...items].reverse()),
      ]);
      const created = [...fromA, ...fromB].filter((o) => o.outcome === 'created');
      expect(created).toHaveLength(tasks.length);
      expect(new Set(created.map((o) => o.taskId)).size).toBe(tasks.length);
      for (const o of [...fromA, ...fromB]) expect(['created', 'duplicate']).toContain(o.outcome);
      for (const t of tasks) expect(await b.tasks.listRuns(t.id)).toHaveLength(1);
    });

    it('packagers on two nodes never claim the same orchestration', async () => {
      for (let i = 0; i < 12; i++) {
        await a.orchestrations.createOrchestration({
          id: `o${String(i).padStart(2, '0')}`,
          workspaceId: 1,
          name: '',
          fileName: 'x.zip',
          sha: 'a'.repeat(64),
          entrypoint: 'main.ts',
          createdAt: `2025-01-01T00:00:${String(i).padStart(2, '0')}.000Z`,
        });
      }
      const claimAll = async (stores: Stores, owner: string): Promise<string[]> => {
        const got: string[] = [];
        for (;;) {
          const r = await stores.orchestrations.claimOrchestrationForPackaging({
            owner,
            at: 't',
            leaseMs: 60_000,
          });
          if (r === null) return got;
          got.push(r.id);
        }
      };
      const [byA, byB] = await Promise.all([
        claimAll(a, 'node-a'),
        claimAll(b, 'node-b'),
        claimAll(a, 'node-a'),
      ]);
      const all = [...byA, ...byB];
      expect(all).toHaveLength(new Set(all).size);
      expect((await a.orchestrations.listOrchestrationsByStatus(['pending_packaging'])).length).toBe(0);
    });

    it('packaging log lines appended from two nodes at once are all kept, each call in order', async () => {
      const line = (who: string, i: number) => ({ time: 't', source: 'quoll' as const, line: `${who}-${i}` });
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 === 0 ? a : b).orchestrations.appendPackagingLog('o1', [line(`c${i}`, 0), line(`c${i}`, 1)]),
        ),
      );
      const lines = (await a.orchestrations.getPackagingLog('o1')).map((l) => l.line);
      expect(lines).toHaveLength(20);
      for (let i = 0; i < 10; i++) {
        const at = lines.indexOf(`c${i}-0`);
        expect(lines[at + 1]).toBe(`c${i}-1`);
      }
    });

    it('a token revoked through one node is revoked for the other', async () => {
      await a.tokens.insertToken({
        id: 't1',
        tokenHash: 'h1',
        kind: 'admin',
        workspaceId: null,
        subject: 'admin',
        createdAt: 't',
        expiresAt: null,
        revokedAt: null,
        parentId: null,
      });
      await b.tokens.revokeToken('t1', 'r');
      expect((await a.tokens.findTokenByHash('h1'))?.revokedAt).toBe('r');
    });
  });
}
