import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConnectionStore, SealedDetails } from '../../connections/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores } from './make-stores.js';

/** The {@link ConnectionStore} contract, run against one backend. */
export function connectionStoreSuite(backend: string, makeStores: MakeStores): void {
  describe(`${backend}: ConnectionStore`, () => {
    let stores: Stores;
    let store: ConnectionStore;
    let ws1: number;
    let ws2: number;
    const MISSING_WS = 9_999;

    beforeEach(async () => {
      stores = await makeStores();
      store = stores.connections;
      ws1 = await workspace('ws-one');
      ws2 = await workspace('ws-two');
    });
    afterEach(async () => {
      await stores.close();
    });

    async function workspace(name: string): Promise<number> {
      const made = await stores.workspaces.createWorkspace(name, '2024-12-09T00:00:00.000Z');
      if (made.outcome !== 'created') throw new Error(`workspace ${name} exists`);
      return made.workspace.id;
    }
    const sealed = (keyId = 'k1', byte = 1): SealedDetails => ({ keyId, blob: Buffer.alloc(40, byte) });
    const create = (id: string, name: string, attachTo?: number) =>
      store.createConnection({
        id,
        name,
        type: 'HTTPFILE',
        sealedDetails: sealed(),
        createdAt: `2024-12-09T21:20:2${id.length}.000Z`,
        attachTo,
      });
    const attachments = async (): Promise<number> =>
      (await store.listForWorkspace(ws1)).length + (await store.listForWorkspace(ws2)).length;

    it('creates a connection and finds it by id and by name, with no workspaces', async () => {
      const created = await create('c1', 'houseprice');
      const expected = {
        id: 'c1',
        name: 'houseprice',
        type: 'HTTPFILE',
        createdAt: '2024-12-09T21:20:22.000Z',
        workspaceNames: [],
      };
      expect(created).toEqual({ outcome: 'created', connection: expected });
      expect(await store.getById('c1')).toEqual(expected);
      expect(await store.getByName('houseprice')).toEqual(expected);
      expect(await store.getByName('nope')).toBeNull();
      expect((await store.getSealed('c1'))?.sealed).toEqual(sealed());
    });

    it('reports a duplicate name and changes nothing', async () => {
      await create('c1', 'houseprice');
      expect(await create('c2', 'houseprice', ws1)).toEqual({ outcome: 'name_taken' });
      expect(await store.list()).toHaveLength(1);
      expect(await attachments()).toBe(0);
      expect(await store.getById('c2')).toBeNull();
    });

    it('creating with attachTo an unknown workspace reports it and stores nothing', async () => {
      expect(await create('c1', 'houseprice', MISSING_WS)).toEqual({ outcome: 'workspace_missing' });
      expect(await store.list()).toEqual([]);
      expect(await store.getById('c1')).toBeNull();
    });

    it('attaches idempotently and lists workspace names sorted', async () => {
      await create('c1', 'houseprice', ws2);
      expect(await store.attach('c1', ws1, 'now')).toBe('attached');
      expect(await store.attach('c1', ws1, 'now')).toBe('attached');
      expect(await attachments()).toBe(2);
      expect((await store.getById('c1'))?.workspaceNames).toEqual(['ws-one', 'ws-two']);
      expect((await store.list()).map((c) => c.workspaceNames)).toEqual([['ws-one', 'ws-two']]);
    });

    it('attach names the missing side', async () => {
      await create('c1', 'houseprice');
      expect(await store.attach('nope', ws1, 'now')).toBe('connection_missing');
      expect(await store.attach('c1', MISSING_WS, 'now')).toBe('workspace_missing');
      expect(await attachments()).toBe(0);
    });

    it('lists all connections oldest first, and per workspace only the attached ones', async () => {
      await create('c1', 'a');
      await create('c22', 'b', ws1);
      await create('c333', 'c', ws2);
      expect((await store.list()).map((c) => c.name)).toEqual(['a', 'b', 'c']);
      expect((await store.listForWorkspace(ws1)).map((c) => c.name)).toEqual(['b']);
      expect(await store.isAttached('c22', ws1)).toBe(true);
      expect(await store.isAttached('c22', ws2)).toBe(false);
    });

    it('breaks ties in creation time by id', async () => {
      for (const id of ['c3', 'c1', 'c2']) await create(id, `n-${id}`, ws1);
      expect((await store.list()).map((c) => c.id)).toEqual(['c1', 'c2', 'c3']);
      expect((await store.listForWorkspace(ws1)).map((c) => c.id)).toEqual(['c1', 'c2', 'c3']);
      expect(await store.listIdsNotSealedWith('k9', 2)).toEqual(['c1', 'c2']);
    });

    it('detach removes one attachment and reports whether there was one', async () => {
      await create('c1', 'houseprice', ws1);
      await store.attach('c1', ws2, 'now');
      expect(await store.detach('c1', ws1)).toBe(true);
      expect(await store.detach('c1', ws1)).toBe(false);
      expect((await store.getById('c1'))?.workspaceNames).toEqual(['ws-two']);
    });

    it('delete removes the connection and detaches it from every workspace', async () => {
      await create('c1', 'houseprice', ws1);
      await store.attach('c1', ws2, 'now');
      await create('c22', 'other', ws1);
      expect(await store.delete('c1')).toBe(true);
      expect(await store.delete('c1')).toBe(false);
      expect(await store.getByName('houseprice')).toBeNull();
      expect((await store.listForWorkspace(ws1)).map((c) => c.id)).toEqual(['c22']);
      expect(await store.listForWorkspace(ws2)).toEqual([]);
    });

    it('deleteIfOnlyAttachedTo deletes only a connection no other workspace uses', async () => {
      await create('c1', 'shared', ws1);
      await store.attach('c1', ws2, 'now');
      await create('c22', 'own', ws1);
      expect(await store.deleteIfOnlyAttachedTo('c1', ws1)).toBe('shared');
      expect(await store.getById('c1')).not.toBeNull();
      expect(await store.deleteIfOnlyAttachedTo('c22', ws1)).toBe('deleted');
      expect(await store.deleteIfOnlyAttachedTo('c22', ws1)).toBe('missing');
    });

    it('names workspaces by id', async () => {
      expect(await store.getWorkspaceName(ws2)).toBe('ws-two');
      expect(await store.getWorkspaceName(MISSING_WS)).toBeNull();
    });

    it('replaceSealed is a compare-and-set on the key id', async () => {
      await create('c1', 'houseprice');
      expect(await store.listIdsNotSealedWith('k2', 10)).toEqual(['c1']);
      expect(await store.replaceSealed('c1', 'other', sealed('k2', 2))).toBe(false);
      expect(await store.replaceSealed('c1', 'k1', sealed('k2', 2))).toBe(true);
      expect((await store.getSealed('c1'))?.sealed).toEqual(sealed('k2', 2));
      expect(await store.listIdsNotSealedWith('k2', 10)).toEqual([]);
    });

    it('keeps audit entries newest first, and after the connection is deleted', async () => {
      await create('c1', 'houseprice');
      const entry = { connectionId: 'c1', connectionName: 'houseprice', action: 'read_details' } as const;
      await store.appendAudit({ ...entry, subject: 'admin', at: 't1' });
      await store.appendAudit({ ...entry, subject: 'task:7', at: 't2' });
      await store.delete('c1');
      const entries = await store.listAudit({ limit: 10 });
      expect(entries.map((e) => [e.subject, e.at])).toEqual([
        ['task:7', 't2'],
        ['admin', 't1'],
      ]);
      expect(typeof entries[0]?.id).toBe('number');
      expect(await store.listAudit({ limit: 1 })).toHaveLength(1);
    });
  });
}
