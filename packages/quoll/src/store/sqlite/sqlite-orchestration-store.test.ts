import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewOrchestration } from '../../orchestrations/index.js';
import { MIGRATIONS_DIR, openSqliteDatabase } from './sqlite-database.js';
import type { SqliteHandle } from './sqlite-database.js';
import { SqliteOrchestrationStore } from './sqlite-orchestration-store.js';

let dir: string;
let db: SqliteHandle;
let store: SqliteOrchestrationStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-orch-store-'));
  // Only this store's migration: the tables must stand alone (no foreign keys elsewhere).
  const only = mkdtempSync(join(dir, 'migrations-'));
  copyFileSync(join(MIGRATIONS_DIR, '0004_orchestrations.sql'), join(only, '0004_orchestrations.sql'));
  db = openSqliteDatabase(join(dir, 'quoll.db'), only);
  store = new SqliteOrchestrationStore(db);
});

afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

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

describe('SqliteOrchestrationStore', () => {
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

  it('claims pending orchestrations oldest first, each only once', async () => {
    await store.createOrchestration(orchestration('late', { createdAt: '2025-01-02T00:00:00.000Z' }));
    await store.createOrchestration(orchestration('early', { createdAt: '2025-01-01T00:00:00.000Z' }));
    const first = await store.claimOrchestrationForPackaging('2025-03-01T00:00:00.000Z');
    const second = await store.claimOrchestrationForPackaging('2025-03-01T00:00:00.000Z');
    expect(first).toMatchObject({ id: 'early', status: 'packaging', updatedAt: '2025-03-01T00:00:00.000Z' });
    expect(second).toMatchObject({ id: 'late', status: 'packaging' });
    expect(await store.claimOrchestrationForPackaging('2025-03-01T00:00:00.000Z')).toBeNull();
  });

  it('requeues orchestrations left in packaging and lists by status', async () => {
    await store.createOrchestration(orchestration('p'));
    await store.createOrchestration(orchestration('r'));
    await store.claimOrchestrationForPackaging('t1');
    await store.setOrchestrationStatus('r', 'ready', { updatedAt: 't2' });
    expect((await store.listOrchestrationsByStatus(['packaging'])).map((o) => o.id)).toEqual(['p']);
    expect(await store.requeueOrchestrationPackaging('t3')).toBe(1);
    expect(
      (await store.listOrchestrationsByStatus(['pending_packaging', 'ready'])).map((o) => [o.id, o.status]),
    ).toEqual([
      ['p', 'pending_packaging'],
      ['r', 'ready'],
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
