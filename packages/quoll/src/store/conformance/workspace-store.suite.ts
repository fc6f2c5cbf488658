import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WorkspaceStore } from '../../workspaces/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores } from './make-stores.js';

/** The {@link WorkspaceStore} contract, run against one backend. */
export function workspaceStoreSuite(backend: string, makeStores: MakeStores): void {
  describe(`${backend}: WorkspaceStore`, () => {
    let stores: Stores;
    let store: WorkspaceStore;

    beforeEach(async () => {
      stores = await makeStores();
      store = stores.workspaces;
    });
    afterEach(async () => {
      await stores.close();
    });

    it('creates workspaces with increasing ids and finds them by id and name', async () => {
      const a = await store.createWorkspace('alpha', '2025-01-01T00:00:00.000Z');
      const b = await store.createWorkspace('beta', '2025-01-02T00:00:00.000Z');
      if (a.outcome !== 'created' || b.outcome !== 'created') throw new Error('not created');
      expect(a.workspace).toEqual({
        id: a.workspace.id,
        name: 'alpha',
        createdAt: '2025-01-01T00:00:00.000Z',
        isDefault: false,
      });
      expect(b.workspace.id).toBeGreaterThan(a.workspace.id);
      expect(await store.getWorkspaceById(a.workspace.id)).toEqual(a.workspace);
      expect(await store.getWorkspaceByName('beta')).toEqual(b.workspace);
      expect(await store.getWorkspaceByName('gamma')).toBeNull();
      expect(await store.getWorkspaceById(9_999)).toBeNull();
      expect((await store.listWorkspaces()).map((w) => w.name)).toEqual(['alpha', 'beta']);
    });

    it('reports a taken name and changes nothing', async () => {
      await store.createWorkspace('alpha', 't1');
      expect(await store.createWorkspace('alpha', 't2')).toEqual({ outcome: 'name_taken' });
      expect(await store.listWorkspaces()).toHaveLength(1);
    });

    it('ensureDefaultWorkspace creates the default once and then returns it', async () => {
      expect(await store.getDefaultWorkspace()).toBeNull();
      const first = await store.ensureDefaultWorkspace('default', 't1');
      expect(first).toMatchObject({ name: 'default', isDefault: true, createdAt: 't1' });
      expect(await store.ensureDefaultWorkspace('default', 't2')).toEqual(first);
      expect(await store.getDefaultWorkspace()).toEqual(first);
      expect(await store.listWorkspaces()).toEqual([first]);
    });

    it('ensureDefaultWorkspace called many times at once makes one default', async () => {
      const all = await Promise.all(
        Array.from({ length: 8 }, (_, i) => store.ensureDefaultWorkspace('default', `t${i}`)),
      );
      expect(new Set(all.map((w) => w.id)).size).toBe(1);
      expect(await store.listWorkspaces()).toHaveLength(1);
    });

    it('ensureDefaultWorkspace promotes a plain workspace that already has the name', async () => {
      const made = await store.createWorkspace('default', 't0');
      if (made.outcome !== 'created') throw new Error('not created');
      const def = await store.ensureDefaultWorkspace('default', 't1');
      expect(def).toEqual({ ...made.workspace, isDefault: true });
    });
  });
}
