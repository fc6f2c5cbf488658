import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../store/index.js';
import type { Stores } from '../store/index.js';
import { ConnectionSealer } from './connection-sealer.js';
import { ConnectionService } from './connection-service.js';
import type { ConnectionScope } from './connection-service.js';
import type { ConnectionStore } from './connection-store.js';
import { FileKeyring } from './keyring.js';

const admin: ConnectionScope = { kind: 'admin' };
const ws1: ConnectionScope = { kind: 'workspace', workspaceId: 1 };
const SECRET = 'p4ssw0rd-of-the-bigquery-account';
const HOST = 'https://secret-host.example.com/xtest-1k.arrow';

let dir: string;
let stores: Stores;
let store: ConnectionStore;
let service: ConnectionService;
let ids: number;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-connsvc-'));
  stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') });
  // Workspace ids 1 and 2 on a fresh database.
  await stores.workspaces.createWorkspace('ws-one', '2024-12-09T00:00:00.000Z');
  await stores.workspaces.createWorkspace('ws-two', '2024-12-09T00:00:00.000Z');
  store = stores.connections;
  ids = 0;
  service = new ConnectionService({
    store,
    sealer: new ConnectionSealer(new FileKeyring({ home: join(dir, 'home') })),
    clock: () => new Date('2024-12-09T21:20:26.268Z'),
    newId: () => `conn-${++ids}`,
  });
});
afterEach(async () => {
  await stores.close();
  rmSync(dir, { recursive: true, force: true });
});

const count = async (): Promise<number> => (await store.list()).length;
/** Attachments over both workspaces. */
const attachments = async (): Promise<number> =>
  (await store.listForWorkspace(1)).length + (await store.listForWorkspace(2)).length;

/** Runs `fn`, expecting an ApiError; returns it. */
async function failure(fn: () => Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await fn();
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected a failure');
}

describe('ConnectionService', () => {
  it('creates a connection and lists it masked: no details in the DTO', async () => {
    const dto = await service.create(admin, {
      name: 'houseprice',
      type: 'HTTPFILE',
      details: { host: HOST },
    });
    expect(dto).toEqual({
      id: 'conn-1',
      name: 'houseprice',
      type: 'HTTPFILE',
      createdAt: '2024-12-09T21:20:26.268Z',
      workspaceNames: [],
    });
    const listed = await service.list(admin);
    expect(listed).toEqual([dto]);
    expect(JSON.stringify(listed)).not.toContain('secret-host');
    expect(JSON.stringify(await service.get(admin, { name: 'houseprice' }))).not.toContain('secret-host');
  });

  it('details() returns the unmasked object and records who read it, when', async () => {
    await service.create(admin, {
      name: 'bq',
      type: 'BIGQUERY',
      details: { password: SECRET, nested: { port: 5432 } },
    });
    const { connection, details } = await service.details(admin, { name: 'bq' }, 'admin-user');
    expect(details).toEqual({ password: SECRET, nested: { port: 5432 } });
    expect(connection.name).toBe('bq');
    await service.details(admin, { id: 'conn-1' }, 'task:42');
    const audit = await store.listAudit({ limit: 10 });
    expect(audit.map((a) => ({ ...a, id: 0 }))).toEqual([
      {
        id: 0,
        subject: 'task:42',
        connectionId: 'conn-1',
        connectionName: 'bq',
        action: 'read_details',
        at: '2024-12-09T21:20:26.268Z',
      },
      {
        id: 0,
        subject: 'admin-user',
        connectionId: 'conn-1',
        connectionName: 'bq',
        action: 'read_details',
        at: '2024-12-09T21:20:26.268Z',
      },
    ]);
  });

  it('stores no secret value in the SQLite file or its WAL', async () => {
    await service.create(admin, {
      name: 'bq-conn',
      type: 'BIGQUERY',
      details: { password: SECRET, host: HOST },
    });
    await service.create(admin, {
      name: 'http-conn',
      type: 'HTTP',
      details: { host: HOST, token: `${SECRET}-2` },
    });
    const readAll = (): Buffer =>
      Buffer.concat(
        ['quoll.db', 'quoll.db-wal']
          .filter((f) => existsSync(join(dir, f)))
          .map((f) => readFileSync(join(dir, f))),
      );
    const whileOpen = readAll();
    // The check can fail: the names are in the bytes we read.
    expect(whileOpen.includes(Buffer.from('bq-conn'))).toBe(true);
    expect(whileOpen.includes(Buffer.from(SECRET))).toBe(false);
    expect(whileOpen.includes(Buffer.from('secret-host'))).toBe(false);
    await stores.close();
    const afterCheckpoint = readAll();
    expect(afterCheckpoint.includes(Buffer.from('http-conn'))).toBe(true);
    expect(afterCheckpoint.includes(Buffer.from(SECRET))).toBe(false);
    expect(afterCheckpoint.includes(Buffer.from('secret-host'))).toBe(false);
  });

  it('a duplicate name answers connection_exists and changes nothing', async () => {
    await service.create(admin, { name: 'houseprice', type: 'HTTPFILE', details: { host: HOST } });
    const err = await failure(() =>
      service.create(admin, { name: 'houseprice', type: 'HTTP', details: { host: 'other' } }),
    );
    expect(err.code).toBe('connection_exists');
    expect(await count()).toBe(1);
    expect((await service.details(admin, { name: 'houseprice' }, 'a')).details).toEqual({ host: HOST });
    expect((await service.get(admin, { name: 'houseprice' })).workspaceNames).toEqual([]);
  });

  it.each([
    ['an empty name', { name: '', type: 'HTTP', details: {} }, 'invalid_name'],
    ['a name over 128 characters', { name: 'a'.repeat(129), type: 'HTTP', details: {} }, 'invalid_name'],
    ['a name with a space', { name: 'house price', type: 'HTTP', details: {} }, 'invalid_name'],
    ['a name with a slash', { name: 'a/b', type: 'HTTP', details: {} }, 'invalid_name'],
    ['a name that is not a string', { name: 7, type: 'HTTP', details: {} }, 'invalid_name'],
    ['an empty type', { name: 'ok', type: '', details: {} }, 'invalid_connection'],
    ['a type that is not a string', { name: 'ok', type: 3, details: {} }, 'invalid_connection'],
    ['details that are an array', { name: 'ok', type: 'HTTP', details: [SECRET] }, 'invalid_connection'],
    ['details that are a string', { name: 'ok', type: 'HTTP', details: SECRET }, 'invalid_connection'],
    ['details that are null', { name: 'ok', type: 'HTTP', details: null }, 'invalid_connection'],
    [
      'details that are a class instance',
      { name: 'ok', type: 'HTTP', details: new Date() },
      'invalid_connection',
    ],
    [
      'details with a BigInt',
      { name: 'ok', type: 'HTTP', details: { password: SECRET, n: 1n } },
      'invalid_connection',
    ],
    [
      'details over 64 KiB',
      { name: 'ok', type: 'HTTP', details: { password: SECRET, blob: 'x'.repeat(64 * 1024) } },
      'invalid_connection',
    ],
  ])(
    'refuses %s with the right code, no secret in the message, and stores nothing',
    async (_label, input, code) => {
      const err = await failure(() => service.create(admin, input));
      expect(err.code).toBe(code);
      expect(err.message).not.toContain(SECRET);
      expect(await count()).toBe(0);
    },
  );

  it('accepts a name of letters, digits, "_", "-" and "." up to 128 characters', async () => {
    await service.create(admin, { name: 'Conn_1-a.b', type: 'HTTP', details: {} });
    await service.create(admin, { name: 'a'.repeat(128), type: 'HTTP', details: {} });
    expect(await count()).toBe(2);
  });

  it('honours a smaller details cap', async () => {
    const small = new ConnectionService({
      store,
      sealer: new ConnectionSealer(new FileKeyring({ home: join(dir, 'home') })),
      maxDetailsBytes: 16,
    });
    expect(
      (await failure(() => small.create(admin, { name: 'x1', type: 'HTTP', details: { host: HOST } }))).code,
    ).toBe('invalid_connection');
    await small.create(admin, { name: 'x2', type: 'HTTP', details: { a: 1 } });
    expect(await count()).toBe(1);
  });

  describe('workspace scope', () => {
    beforeEach(async () => {
      await service.create(admin, { name: 'shared', type: 'HTTP', details: { host: HOST } });
      await service.create(admin, { name: 'hidden', type: 'HTTP', details: { password: SECRET } });
      await service.attach(admin, { name: 'shared' }, 1);
      await service.attach(admin, { name: 'hidden' }, 2);
    });

    it('sees only the connections attached to its workspace', async () => {
      expect((await service.list(ws1)).map((c) => c.name)).toEqual(['shared']);
      expect((await service.list(admin)).map((c) => c.name)).toEqual(['shared', 'hidden']);
      expect((await service.list(admin, { workspaceId: 2 })).map((c) => c.name)).toEqual(['hidden']);
      expect((await service.get(ws1, { name: 'shared' })).workspaceNames).toEqual(['ws-one']);
    });

    it('is shown only its own workspace in workspaceNames of a connection other workspaces share', async () => {
      await service.attach(admin, { name: 'shared' }, 2);
      // The admin sees both: the filter below is what hides ws-two.
      expect((await service.get(admin, { name: 'shared' })).workspaceNames).toEqual(['ws-one', 'ws-two']);
      expect((await service.get(ws1, { name: 'shared' })).workspaceNames).toEqual(['ws-one']);
      expect((await service.list(ws1)).map((c) => c.workspaceNames)).toEqual([['ws-one']]);
      expect((await service.list(ws1, { workspaceId: 1 })).map((c) => c.workspaceNames)).toEqual([
        ['ws-one'],
      ]);
      expect((await service.details(ws1, { name: 'shared' }, 'task')).connection.workspaceNames).toEqual([
        'ws-one',
      ]);
      expect((await service.attach(ws1, { name: 'shared' }, 1)).workspaceNames).toEqual(['ws-one']);
    });

    it('cannot delete a connection another workspace also uses: forbidden, and nothing changes', async () => {
      await service.attach(admin, { name: 'shared' }, 2);
      const err = await failure(() => service.delete(ws1, { name: 'shared' }));
      expect(err.code).toBe('forbidden');
      expect(err.message).toContain('detach it from this workspace instead');
      // The message says the connection is shared, never with whom.
      expect(err.message).not.toContain('ws-two');
      expect(await count()).toBe(2);
      expect((await service.get(admin, { name: 'shared' })).workspaceNames).toEqual(['ws-one', 'ws-two']);
    });

    it('deletes a connection attached to its own workspace alone', async () => {
      await service.delete(ws1, { name: 'shared' });
      expect((await service.list(admin)).map((c) => c.name)).toEqual(['hidden']);
      expect(await attachments()).toBe(1);
    });

    it("answers connection_not_found for another workspace's connection exactly like a missing one", async () => {
      const attempts = [
        (name: string) => service.get(ws1, { name }),
        (name: string) => service.details(ws1, { name }, 'task'),
        (name: string) => service.delete(ws1, { name }),
        (name: string) => service.attach(ws1, { name }, 1),
        (name: string) => service.detach(ws1, { name }, 1),
      ];
      for (const attempt of attempts) {
        const hidden = await failure(() => attempt('hidden'));
        const missing = await failure(() => attempt('missing'));
        expect(hidden.code).toBe('connection_not_found');
        expect(missing.code).toBe('connection_not_found');
        expect(hidden.message.replace('"hidden"', '"X"')).toBe(missing.message.replace('"missing"', '"X"'));
      }
      // It says what this caller can see and how to make the connection visible.
      expect((await failure(() => service.get(ws1, { name: 'hidden' }))).message).toMatch(
        /^No connection is named "hidden" among those this token can see: it is bounded to workspace ".+" and sees only the connections attached to it\. Attach the connection to that workspace \(workspace\.addConnection\(name\)/,
      );
      const byId = await failure(() => service.get(ws1, { id: 'conn-2' }));
      const missingId = await failure(() => service.get(ws1, { id: 'conn-99' }));
      expect(byId.message.replace('conn-2', 'X')).toBe(missingId.message.replace('conn-99', 'X'));
      expect(await count()).toBe(2);
      expect(await store.listAudit({ limit: 10 })).toEqual([]);
    });

    it('cannot name another workspace: workspace_not_found', async () => {
      expect((await failure(() => service.list(ws1, { workspaceId: 2 }))).code).toBe('workspace_not_found');
      expect((await failure(() => service.attach(ws1, { name: 'shared' }, 2))).code).toBe(
        'workspace_not_found',
      );
      expect((await service.get(admin, { name: 'shared' })).workspaceNames).toEqual(['ws-one']);
    });

    it('cannot create connections: forbidden before the name is looked at, so existence does not leak', async () => {
      const taken = await failure(() => service.create(ws1, { name: 'hidden', type: 'HTTP', details: {} }));
      const free = await failure(() => service.create(ws1, { name: 'mine', type: 'HTTP', details: {} }));
      const invalid = await failure(() => service.create(ws1, { name: '', type: '', details: null }));
      expect([taken.code, free.code, invalid.code]).toEqual(['forbidden', 'forbidden', 'forbidden']);
      expect(taken.message).toBe(free.message);
      expect(await count()).toBe(2);
    });

    it('detaching from its workspace hides the connection from it', async () => {
      await service.detach(ws1, { name: 'shared' }, 1);
      expect(await service.list(ws1)).toEqual([]);
      expect((await failure(() => service.get(ws1, { name: 'shared' }))).code).toBe('connection_not_found');
    });
  });

  it('attaching twice is a no-op and delete detaches everywhere', async () => {
    await service.create(admin, { name: 'houseprice', type: 'HTTPFILE', details: { host: HOST } });
    await service.attach(admin, { name: 'houseprice' }, 1);
    const twice = await service.attach(admin, { name: 'houseprice' }, 1);
    const both = await service.attach(admin, { name: 'houseprice' }, 2);
    expect(twice.workspaceNames).toEqual(['ws-one']);
    expect(both.workspaceNames).toEqual(['ws-one', 'ws-two']);
    await service.delete(admin, { name: 'houseprice' });
    expect(await service.list(admin)).toEqual([]);
    expect(await service.list(ws1)).toEqual([]);
    expect(await attachments()).toBe(0);
    expect((await failure(() => service.delete(admin, { name: 'houseprice' }))).code).toBe(
      'connection_not_found',
    );
  });

  it('attach to a workspace that does not exist answers workspace_not_found', async () => {
    await service.create(admin, { name: 'houseprice', type: 'HTTPFILE', details: { host: HOST } });
    const err = await failure(() => service.attach(admin, { name: 'houseprice' }, 9));
    expect(err.code).toBe('workspace_not_found');
    expect((await service.get(admin, { name: 'houseprice' })).workspaceNames).toEqual([]);
  });
});
