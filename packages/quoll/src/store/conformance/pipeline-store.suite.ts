import type { PipelineStepDto } from '@quoll/client/wire';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PipelineStore } from '../../pipelines/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores } from './make-stores.js';

/** The {@link PipelineStore} contract, run against one backend. */
export function pipelineStoreSuite(backend: string, makeStores: MakeStores): void {
  describe(`${backend}: PipelineStore`, () => {
    let stores: Stores;
    let store: PipelineStore;
    let ws: number;

    beforeEach(async () => {
      stores = await makeStores();
      store = stores.pipelines;
      ws = (await stores.workspaces.ensureDefaultWorkspace('default', 't0')).id;
    });
    afterEach(async () => {
      await stores.close();
    });

    const steps = (v: string): PipelineStepDto[] => [
      { model: { name: 'm', version: v, sha: 'ab'.repeat(32) } },
    ];
    const config = { workers: 2 };

    it('ensurePipeline creates once and then returns the existing pipeline', async () => {
      const a = await store.ensurePipeline(ws, 'p', 't1');
      expect(a.created).toBe(true);
      expect(a.pipeline).toEqual({
        id: a.pipeline.id,
        workspaceId: ws,
        name: 'p',
        steps: [],
        createdAt: 't1',
        updatedAt: 't1',
      });
      const b = await store.ensurePipeline(ws, 'p', 't2');
      expect(b).toEqual({ pipeline: a.pipeline, created: false });
      expect(await store.getPipeline(ws, 'p')).toEqual(a.pipeline);
      expect(await store.getPipelineById(a.pipeline.id)).toEqual(a.pipeline);
      expect(await store.getPipeline(ws, 'q')).toBeNull();
      expect(await store.getPipelineById(9_999)).toBeNull();
    });

    it('ensurePipeline racing with itself creates one pipeline', async () => {
      const all = await Promise.all(Array.from({ length: 6 }, () => store.ensurePipeline(ws, 'p', 't')));
      expect(all.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(all.map((r) => r.pipeline.id)).size).toBe(1);
    });

    it('lists pipelines oldest first, of one workspace or all', async () => {
      const made = await stores.workspaces.createWorkspace('other', 't0');
      if (made.outcome !== 'created') throw new Error('not created');
      await store.ensurePipeline(ws, 'a', 't1');
      await store.ensurePipeline(made.workspace.id, 'b', 't2');
      await store.ensurePipeline(ws, 'c', 't3');
      expect((await store.listPipelines(ws)).map((p) => p.name)).toEqual(['a', 'c']);
      expect((await store.listPipelines()).map((p) => p.name)).toEqual(['a', 'b', 'c']);
    });

    it('sets draft steps; null for an unknown pipeline', async () => {
      const { pipeline } = await store.ensurePipeline(ws, 'p', 't1');
      const updated = await store.setPipelineSteps(pipeline.id, steps('v1'), 't2');
      expect(updated).toMatchObject({ steps: steps('v1'), updatedAt: 't2', createdAt: 't1' });
      expect(await store.setPipelineSteps(9_999, [], 't3')).toBeNull();
    });

    it('recordDeploy persists a version and the desired deployment together, returning the one it replaced', async () => {
      const { pipeline } = await store.ensurePipeline(ws, 'p', 't1');
      const first = await store.recordDeploy({
        pipelineId: pipeline.id,
        version: 'v1',
        steps: steps('m1'),
        config,
        at: 't2',
      });
      expect(first).toEqual({
        version: { version: 'v1', steps: steps('m1'), createdAt: 't2' },
        previous: null,
        reused: false,
      });
      const second = await store.recordDeploy({
        pipelineId: pipeline.id,
        version: 'v2',
        steps: steps('m2'),
        config: {},
        at: 't3',
      });
      expect(second.previous).toEqual({ pipelineId: pipeline.id, version: 'v1', config, deployedAt: 't2' });
      expect(await store.getDeployment(pipeline.id)).toEqual({
        pipelineId: pipeline.id,
        version: 'v2',
        config: {},
        deployedAt: 't3',
      });
      expect((await store.getPipelineById(pipeline.id))?.updatedAt).toBe('t3');
      expect(await store.getPipelineVersion('v1')).toEqual({
        version: 'v1',
        steps: steps('m1'),
        createdAt: 't2',
      });
      expect(await store.getPipelineVersion('nope')).toBeNull();
      expect((await store.listPipelineVersions(pipeline.id)).map((v) => v.version)).toEqual(['v2', 'v1']);
      expect(await store.listDeployments()).toHaveLength(1);
    });

    it("a deploy of the newest version's steps reuses that version; older equal steps do not count", async () => {
      const { pipeline } = await store.ensurePipeline(ws, 'p', 't1');
      const id = pipeline.id;
      await store.recordDeploy({ pipelineId: id, version: 'v1', steps: steps('m1'), config, at: 't2' });
      const again = await store.recordDeploy({
        pipelineId: id,
        version: 'v2',
        steps: steps('m1'),
        config: {},
        at: 't3',
      });
      expect(again).toEqual({
        version: { version: 'v1', steps: steps('m1'), createdAt: 't2' },
        previous: { pipelineId: id, version: 'v1', config, deployedAt: 't2' },
        reused: true,
      });
      expect(await store.getDeployment(id)).toEqual({
        pipelineId: id,
        version: 'v1',
        config: {},
        deployedAt: 't3',
      });
      expect(await store.getPipelineVersion('v2')).toBeNull();
      await store.recordDeploy({ pipelineId: id, version: 'v3', steps: steps('m2'), config, at: 't4' });
      // Back to m1: the newest version (v3) differs, so this is a new version, not v1 again.
      const back = await store.recordDeploy({
        pipelineId: id,
        version: 'v4',
        steps: steps('m1'),
        config,
        at: 't5',
      });
      expect(back.reused).toBe(false);
      expect((await store.listPipelineVersions(id)).map((v) => v.version)).toEqual(['v4', 'v3', 'v1']);
    });

    it('a deploy with a version id that exists already changes nothing', async () => {
      const { pipeline } = await store.ensurePipeline(ws, 'p', 't1');
      await store.recordDeploy({ pipelineId: pipeline.id, version: 'v1', steps: [], config, at: 't2' });
      await expect(
        store.recordDeploy({
          pipelineId: pipeline.id,
          version: 'v1',
          steps: steps('m1'),
          config: {},
          at: 't3',
        }),
      ).rejects.toThrow();
      expect(await store.getDeployment(pipeline.id)).toMatchObject({ version: 'v1', deployedAt: 't2' });
    });

    it('restoreDeploymentIfCurrent puts the previous deployment back only while the expected one is current', async () => {
      const { pipeline } = await store.ensurePipeline(ws, 'p', 't1');
      const id = pipeline.id;
      await store.recordDeploy({ pipelineId: id, version: 'v1', steps: steps('m1'), config, at: 't2' });
      const { previous } = await store.recordDeploy({
        pipelineId: id,
        version: 'v2',
        steps: steps('m2'),
        config,
        at: 't3',
      });
      if (previous === null) throw new Error('no previous');
      await store.recordDeploy({ pipelineId: id, version: 'v3', steps: steps('m3'), config, at: 't4' });
      // v3 was recorded after v2: restoring "v2 failed → v1" must not undo it.
      expect(await store.restoreDeploymentIfCurrent(id, 'v2', previous)).toBe(false);
      expect((await store.getDeployment(id))?.version).toBe('v3');
      expect(await store.restoreDeploymentIfCurrent(id, 'v3', previous)).toBe(true);
      expect(await store.getDeployment(id)).toEqual(previous);
    });

    it('versions made in the same millisecond list newest first by their time-ordered ids', async () => {
      const { pipeline } = await store.ensurePipeline(ws, 'p', 't1');
      const { pipeline: q } = await store.ensurePipeline(ws, 'q', 't1');
      for (const v of ['0a', '0b', '0c']) {
        await store.recordDeploy({
          pipelineId: pipeline.id,
          version: v,
          steps: steps(v),
          config,
          at: 'same',
        });
      }
      expect((await store.listPipelineVersions(pipeline.id)).map((v) => v.version)).toEqual([
        '0c',
        '0b',
        '0a',
      ]);
      const ids = await store.listVersionIds([pipeline.id, q.id, 9_999]);
      expect(ids.get(pipeline.id)).toEqual(['0c', '0b', '0a']);
      expect(ids.get(q.id)).toEqual([]);
      expect(ids.get(9_999)).toEqual([]);
      expect(await store.listVersionIds([])).toEqual(new Map());
    });

    it('undeploy deletes the desired deployment, and the versions stay', async () => {
      const { pipeline } = await store.ensurePipeline(ws, 'p', 't1');
      await store.recordDeploy({ pipelineId: pipeline.id, version: 'v1', steps: [], config, at: 't2' });
      await store.deleteDeployment(pipeline.id);
      await store.deleteDeployment(pipeline.id);
      expect(await store.getDeployment(pipeline.id)).toBeNull();
      expect(await store.listDeployments()).toEqual([]);
      expect(await store.listPipelineVersions(pipeline.id)).toHaveLength(1);
    });
  });
}
