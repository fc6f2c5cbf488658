import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewOrchestration, OrchestrationStore } from '../../orchestrations/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores } from './make-stores.js';

/** A claim by `owner` stamped `at` (the row's updatedAt), leased for `leaseMs` by the store's clock. */
const claim = (now = Date.UTC(2025, 2, 1), owner = 'node-a', leaseMs = 60_000) => ({
  owner,
  at: new Date(now).toISOString(),
  leaseMs,
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function orchestration(id: string, overrides: Partial<NewOrchestration> = {}): NewOrchestration {
  return {
    id,
    workspaceId: 1,
    name: `orch-${id}`,
    fileName: `${id}.zip`,
    sha: 'a'.repeat(64),
    entrypoint: 'main.ts',
    createdAt: `2025-01-01T00:00:0${id.length % 10}.000Z`,
    ...overrides,
  };
}

/** The {@link OrchestrationStore} contract, run against one backend. */
export function orchestrationStoreSuite(backend: string, makeStores: MakeStores): void {
  describe(`${backend}: OrchestrationStore`, () => {
    let stores: Stores;
    let store: OrchestrationStore;

    beforeEach(async () => {
      stores = await makeStores();
      store = stores.orchestrations;
    });
    afterEach(async () => {
      await stores.close();
    });

    it('creates an orchestration in pending_packaging and reads it back', async () => {
      const created = await store.createOrchestration(orchestration('o1', { name: '' }));
      expect(created).toEqual({
        id: 'o1',
        workspaceId: 1,
        name: '',
        fileName: 'o1.zip',
        sha: 'a'.repeat(64),
        status: 'pending_packaging',
        error: null,
        entrypoint: 'main.ts',
        depHash: null,
        packageSha: null,
        createdAt: '2025-01-01T00:00:02.000Z',
        updatedAt: '2025-01-01T00:00:02.000Z',
      });
      expect(await store.getOrchestration('o1')).toEqual(created);
      expect(await store.getOrchestration('nope')).toBeNull();
    });

    it('lists all orchestrations oldest first, or those of one workspace', async () => {
      await store.createOrchestration(
        orchestration('b', { createdAt: '2025-01-02T00:00:00.000Z', workspaceId: 2 }),
      );
      await store.createOrchestration(orchestration('a', { createdAt: '2025-01-01T00:00:00.000Z' }));
      expect((await store.listOrchestrations()).map((o) => o.id)).toEqual(['a', 'b']);
      expect((await store.listOrchestrations({ workspaceId: 2 })).map((o) => o.id)).toEqual(['b']);
      expect(await store.listOrchestrations({ workspaceId: 3 })).toEqual([]);
    });

    it('setOrchestrationStatus keeps omitted entrypoint and depHash, and clears an omitted error', async () => {
      await store.createOrchestration(orchestration('o1'));
      const failed = await store.setOrchestrationStatus('o1', 'error', {
        error: 'boom',
        updatedAt: '2025-02-01T00:00:00.000Z',
      });
      expect(failed).toMatchObject({
        status: 'error',
        error: 'boom',
        entrypoint: 'main.ts',
        updatedAt: '2025-02-01T00:00:00.000Z',
      });
      const ready = await store.setOrchestrationStatus('o1', 'ready', {
        depHash: 'h1',
        entrypoint: 'sub/main.ts',
        updatedAt: '2025-02-02T00:00:00.000Z',
      });
      expect(ready).toMatchObject({ status: 'ready', error: null, entrypoint: 'sub/main.ts', depHash: 'h1' });
      expect(await store.setOrchestrationStatus('missing', 'ready', { updatedAt: 'x' })).toBeNull();
    });

    it('setOrchestrationStatus sets the package archive SHA when given and keeps it when omitted', async () => {
      await store.createOrchestration(orchestration('o1'));
      const archived = await store.setOrchestrationStatus('o1', 'ready', {
        packageSha: 'b'.repeat(64),
        updatedAt: '2025-02-01T00:00:00.000Z',
      });
      expect(archived?.packageSha).toBe('b'.repeat(64));
      const again = await store.setOrchestrationStatus('o1', 'ready', {
        updatedAt: '2025-02-02T00:00:00.000Z',
      });
      expect(again?.packageSha).toBe('b'.repeat(64));
      expect((await store.getOrchestration('o1'))?.packageSha).toBe('b'.repeat(64));
      const cleared = await store.setOrchestrationStatus('o1', 'pending_packaging', {
        packageSha: null,
        updatedAt: '2025-02-03T00:00:00.000Z',
      });
      expect(cleared?.packageSha).toBeNull();
    });

    it('claims pending orchestrations oldest first, each only once', async () => {
      await store.createOrchestration(orchestration('late', { createdAt: '2025-01-02T00:00:00.000Z' }));
      await store.createOrchestration(orchestration('early', { createdAt: '2025-01-01T00:00:00.000Z' }));
      const first = await store.claimOrchestrationForPackaging(claim());
      const second = await store.claimOrchestrationForPackaging(claim());
      expect(first).toMatchObject({
        id: 'early',
        status: 'packaging',
        updatedAt: '2025-03-01T00:00:00.000Z',
      });
      expect(second).toMatchObject({ id: 'late', status: 'packaging' });
      expect(await store.claimOrchestrationForPackaging(claim())).toBeNull();
    });

    it('takes over a job only once its lease expired (by the store clock), and its old owner can no longer renew it', async () => {
      await store.createOrchestration(orchestration('job'));
      expect((await store.claimOrchestrationForPackaging(claim(undefined, 'node-a')))?.id).toBe('job');
      // Leased for a minute: another node finds nothing to do before then, whatever its clock says.
      expect(await store.claimOrchestrationForPackaging(claim(Date.UTC(2030, 0, 1), 'node-b'))).toBeNull();
      // node-a renews it for 100 ms only, then stops renewing: after that, node-b takes it over.
      expect(await store.renewPackagingLease('job', 'node-a', 100)).toBe(true);
      await sleep(150);
      expect((await store.claimOrchestrationForPackaging(claim(undefined, 'node-b')))?.id).toBe('job');
      expect(await store.renewPackagingLease('job', 'node-a', 60_000)).toBe(false);
      expect(await store.renewPackagingLease('job', 'node-b', 60_000)).toBe(true);
      expect(await store.claimOrchestrationForPackaging(claim(undefined, 'node-a'))).toBeNull();
    });

    it("requeues only the requeuing owner's jobs and lists by status", async () => {
      await store.createOrchestration(orchestration('p'));
      await store.createOrchestration(orchestration('r'));
      await store.createOrchestration(orchestration('other', { createdAt: '2025-01-09T00:00:00.000Z' }));
      await store.claimOrchestrationForPackaging(claim());
      await store.claimOrchestrationForPackaging(claim());
      await store.claimOrchestrationForPackaging(claim(Date.UTC(2025, 2, 1), 'node-b'));
      await store.setOrchestrationStatus('r', 'ready', { updatedAt: 't2' });
      expect((await store.listOrchestrationsByStatus(['packaging'])).map((o) => o.id)).toEqual([
        'p',
        'other',
      ]);
      expect(await store.requeueOrchestrationPackaging('node-a', 't3')).toBe(1);
      expect((await store.listOrchestrationsByStatus(['packaging'])).map((o) => o.id)).toEqual(['other']);
      await store.setOrchestrationStatus('other', 'ready', { updatedAt: 't4' });
      expect(
        (await store.listOrchestrationsByStatus(['pending_packaging', 'ready'])).map((o) => [o.id, o.status]),
      ).toEqual([
        ['p', 'pending_packaging'],
        ['r', 'ready'],
        ['other', 'ready'],
      ]);
      expect(await store.listOrchestrationsByStatus([])).toEqual([]);
    });

    it('appends packaging log lines in order, per orchestration', async () => {
      await store.appendPackagingLog('o1', [
        { time: 't1', source: 'quoll', line: 'packaging started' },
        { time: 't2', source: 'npm', line: 'added 1 package' },
      ]);
      await store.appendPackagingLog('o2', [{ time: 't1', source: 'quoll', line: 'other' }]);
      await store.appendPackagingLog('o1', [{ time: 't3', source: 'esbuild', line: 'compiled' }]);
      await store.appendPackagingLog('o1', []);
      expect(await store.getPackagingLog('o1')).toEqual([
        { time: 't1', source: 'quoll', line: 'packaging started' },
        { time: 't2', source: 'npm', line: 'added 1 package' },
        { time: 't3', source: 'esbuild', line: 'compiled' },
      ]);
      expect(await store.getPackagingLog('none')).toEqual([]);
    });
  });
}
