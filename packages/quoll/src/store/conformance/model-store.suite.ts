import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ModelStore, NewModelVersion } from '../../models/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores } from './make-stores.js';

/** The {@link ModelStore} contract, run against one backend. */
export function modelStoreSuite(backend: string, makeStores: MakeStores): void {
  describe(`${backend}: ModelStore`, () => {
    let stores: Stores;
    let store: ModelStore;
    let ws: number;
    let other: number;

    beforeEach(async () => {
      stores = await makeStores();
      store = stores.models;
      ws = (await stores.workspaces.ensureDefaultWorkspace('default', 't0')).id;
      const made = await stores.workspaces.createWorkspace('other', 't0');
      if (made.outcome !== 'created') throw new Error('not created');
      other = made.workspace.id;
    });
    afterEach(async () => {
      await stores.close();
    });

    const model = (version: string, over: Partial<NewModelVersion> = {}): NewModelVersion => ({
      workspaceId: ws,
      name: 'ccfraud',
      version,
      sha: 'ab'.repeat(32),
      fileName: 'ccfraud.onnx',
      sizeBytes: 3_000_000_000,
      inputs: [{ name: 'tensor', type: 'float32', shape: [null, 29] }],
      outputs: [{ name: 'out', type: 'float32', shape: [null, 1] }],
      config: { tensorFields: null, batchConfig: null },
      createdAt: '2025-01-01T00:00:00.000Z',
      ...over,
    });

    it('inserts versions and returns them with an id, framework onnx and every field', async () => {
      const m = await store.insertModelVersion(model('v1'));
      expect(m).toEqual({ ...model('v1'), id: m.id, framework: 'onnx' });
      expect(await store.getModelVersionByVersion('v1')).toEqual(m);
      expect(await store.getModelVersionByVersion('nope')).toBeNull();
    });

    it('the newest version wins a lookup without a version; lists are newest first per workspace', async () => {
      const v1 = await store.insertModelVersion(model('v1'));
      const v2 = await store.insertModelVersion(model('v2'));
      await store.insertModelVersion(model('v3', { workspaceId: other }));
      await store.insertModelVersion(model('v4', { name: 'other-model' }));
      expect(await store.getModelVersion(ws, 'ccfraud')).toEqual(v2);
      expect(await store.getModelVersion(ws, 'ccfraud', 'v1')).toEqual(v1);
      expect(await store.getModelVersion(ws, 'ccfraud', 'v3')).toBeNull();
      expect(await store.getModelVersion(other, 'ccfraud')).toMatchObject({ version: 'v3' });
      expect((await store.listModelVersions(ws)).map((m) => m.version)).toEqual(['v4', 'v2', 'v1']);
    });

    it('a duplicate version id is refused', async () => {
      await store.insertModelVersion(model('v1'));
      await expect(store.insertModelVersion(model('v1', { name: 'x' }))).rejects.toThrow();
    });

    it('sets a config and returns the updated version; null for an unknown version', async () => {
      await store.insertModelVersion(model('v1'));
      const updated = await store.setModelConfig('v1', { tensorFields: ['tensor'], batchConfig: 'single' });
      expect(updated?.config).toEqual({ tensorFields: ['tensor'], batchConfig: 'single' });
      expect((await store.getModelVersionByVersion('v1'))?.config).toEqual(updated?.config);
      expect(await store.setModelConfig('nope', { tensorFields: null, batchConfig: null })).toBeNull();
    });
  });
}
