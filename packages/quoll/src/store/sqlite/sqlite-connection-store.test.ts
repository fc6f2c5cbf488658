import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SealedDetails } from '../../connections/index.js';
import { SqliteConnectionStore } from './sqlite-connection-store.js';
import { openSqliteDatabase } from './sqlite-database.js';
import type { SqliteHandle } from './sqlite-database.js';

const MIGRATION = fileURLToPath(new URL('../../../migrations/0003_connections.sql', import.meta.url));
const CORE_STUB =
  "CREATE TABLE workspaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL DEFAULT '', is_default INTEGER NOT NULL DEFAULT 0);";

let dir: string;
let db: SqliteHandle;
let store: SqliteConnectionStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-connstore-'));
  const migrations = join(dir, 'migrations');
  mkdirSync(migrations);
  writeFileSync(join(migrations, '0001_core.sql'), CORE_STUB);
  copyFileSync(MIGRATION, join(migrations, '0003_connections.sql'));
  db = openSqliteDatabase(join(dir, 'quoll.db'), migrations);
  db.prepare("INSERT INTO workspaces (id, name) VALUES (1, 'ws-one'), (2, 'ws-two')").run();
  store = new SqliteConnectionStore(db);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

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
const count = (table: string): number =>
  (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

describe('SqliteConnectionStore', () => {
  it('creates a connection and finds it by id and by name, with no workspaces', async () => {
    const created = await create('c1', 'houseprice');
    expect(created).toEqual({
      id: 'c1',
      name: 'houseprice',
      type: 'HTTPFILE',
      createdAt: '2024-12-09T21:20:22.000Z',
      workspaceNames: [],
    });
    expect(await store.getById('c1')).toEqual(created);
    expect(await store.getByName('houseprice')).toEqual(created);
    expect(await store.getByName('nope')).toBeNull();
    expect((await store.getSealed('c1'))?.sealed).toEqual(sealed());
  });

  it('answers connection_exists on a duplicate name and changes nothing', async () => {
    await create('c1', 'houseprice');
    await expect(create('c2', 'houseprice', 1)).rejects.toMatchObject({ code: 'connection_exists' });
    expect(count('connections')).toBe(1);
    expect(count('connection_workspaces')).toBe(0);
    expect(await store.getById('c2')).toBeNull();
  });

  it('creating with attachTo an unknown workspace stores nothing', async () => {
    await expect(create('c1', 'houseprice', 99)).rejects.toMatchObject({ code: 'workspace_not_found' });
    expect(count('connections')).toBe(0);
  });

  it('attaches idempotently and lists workspace names sorted', async () => {
    await create('c1', 'houseprice', 2);
    await store.attach('c1', 1, 'now');
    await store.attach('c1', 1, 'now');
    expect(count('connection_workspaces')).toBe(2);
    expect((await store.getById('c1'))?.workspaceNames).toEqual(['ws-one', 'ws-two']);
    expect((await store.list()).map((c) => c.workspaceNames)).toEqual([['ws-one', 'ws-two']]);
  });

  it('attach names the missing side: connection_not_found or workspace_not_found', async () => {
    await create('c1', 'houseprice');
    await expect(store.attach('nope', 1, 'now')).rejects.toMatchObject({ code: 'connection_not_found' });
    await expect(store.attach('c1', 42, 'now')).rejects.toMatchObject({ code: 'workspace_not_found' });
    expect(count('connection_workspaces')).toBe(0);
  });

  it('lists all connections oldest first, and per workspace only the attached ones', async () => {
    await create('c1', 'a');
    await create('c22', 'b', 1);
    await create('c333', 'c', 2);
    expect((await store.list()).map((c) => c.name)).toEqual(['a', 'b', 'c']);
    expect((await store.listForWorkspace(1)).map((c) => c.name)).toEqual(['b']);
    expect(await store.isAttached('c22', 1)).toBe(true);
    expect(await store.isAttached('c22', 2)).toBe(false);
  });

  it('detach removes one attachment and reports whether there was one', async () => {
    await create('c1', 'houseprice', 1);
    await store.attach('c1', 2, 'now');
    expect(await store.detach('c1', 1)).toBe(true);
    expect(await store.detach('c1', 1)).toBe(false);
    expect((await store.getById('c1'))?.workspaceNames).toEqual(['ws-two']);
  });

  it('delete removes the connection and detaches it from every workspace', async () => {
    await create('c1', 'houseprice', 1);
    await store.attach('c1', 2, 'now');
    await create('c22', 'other', 1);
    expect(await store.delete('c1')).toBe(true);
    expect(await store.delete('c1')).toBe(false);
    expect(await store.getByName('houseprice')).toBeNull();
    expect(db.prepare('SELECT connection_id FROM connection_workspaces').all()).toEqual([
      { connection_id: 'c22' },
    ]);
  });

  it('deleting a workspace drops its attachments but keeps the connection', async () => {
    await create('c1', 'houseprice', 1);
    db.prepare('DELETE FROM workspaces WHERE id = 1').run();
    expect((await store.getById('c1'))?.workspaceNames).toEqual([]);
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
    await store.appendAudit({
      subject: 'admin',
      connectionId: 'c1',
      connectionName: 'houseprice',
      action: 'read_details',
      at: 't1',
    });
    await store.appendAudit({
      subject: 'task:7',
      connectionId: 'c1',
      connectionName: 'houseprice',
      action: 'read_details',
      at: 't2',
    });
    await store.delete('c1');
    const entries = await store.listAudit({ limit: 10 });
    expect(entries.map((e) => [e.subject, e.at])).toEqual([
      ['task:7', 't2'],
      ['admin', 't1'],
    ]);
    expect(await store.listAudit({ limit: 1 })).toHaveLength(1);
  });
});
