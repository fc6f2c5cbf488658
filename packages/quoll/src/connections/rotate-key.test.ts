import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteDatabase } from '../store/index.js';
import type { SqliteHandle } from '../store/index.js';
import { SqliteConnectionStore } from '../store/sqlite/sqlite-connection-store.js';
import { ConnectionSealer } from './connection-sealer.js';
import { ConnectionService } from './connection-service.js';
import type { ConnectionScope } from './connection-service.js';
import { FileKeyring } from './keyring.js';
import { MasterKeyError, generateMasterKey, loadMasterKey, writeKeyFileExclusive } from './master-key.js';
import { runRotateKeyCommand } from './rotate-key-command.js';
import { retireOldKey, rotateKey } from './rotate-key.js';
import type { RotateKeyProgress } from './rotate-key.js';

const MIGRATION = fileURLToPath(new URL('../../migrations/0003_connections.sql', import.meta.url));
const CORE_STUB =
  "CREATE TABLE workspaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL DEFAULT '', is_default INTEGER NOT NULL DEFAULT 0);";
const admin: ConnectionScope = { kind: 'admin' };

let dir: string;
let home: string;
let migrations: string;
let dbPath: string;
let db: SqliteHandle;
let store: SqliteConnectionStore;
/** Plays the running server: its own keyring, loaded before the rotation starts. */
let server: ConnectionService;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-rotate-'));
  home = join(dir, 'home');
  migrations = join(dir, 'migrations');
  mkdirSync(migrations);
  writeFileSync(join(migrations, '0001_core.sql'), CORE_STUB);
  copyFileSync(MIGRATION, join(migrations, '0003_connections.sql'));
  dbPath = join(home, 'quoll.db');
  mkdirSync(home);
  db = openSqliteDatabase(dbPath, migrations);
  store = new SqliteConnectionStore(db);
  server = new ConnectionService({ store, sealer: new ConnectionSealer(new FileKeyring({ home })) });
  for (let i = 0; i < 7; i++) {
    await server.create(admin, {
      name: `conn-${i}`,
      type: 'HTTP',
      details: { host: `https://h${i}.example.com`, i },
    });
  }
});
afterEach(() => {
  if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

const keyIds = (): string[] =>
  (db.prepare('SELECT DISTINCT key_id FROM connections').all() as { key_id: string }[]).map((r) => r.key_id);

/** Every connection's details, as the running server reads them. */
async function readAllThroughServer(): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const c of await server.list(admin))
    out.push((await server.details(admin, { id: c.id }, 'reader')).details);
  return out;
}
const expected = Array.from({ length: 7 }, (_, i) => ({ host: `https://h${i}.example.com`, i }));

describe('rotateKey', () => {
  it('re-seals every row under a new key id while reads keep working at every step', async () => {
    const oldId = loadMasterKey({ home, env: {} }).id;
    expect(keyIds()).toEqual([oldId]);
    const steps: string[] = [];
    let readsDuringRotation = 0;
    const result = await rotateKey({
      home,
      store,
      env: {},
      batchSize: 3,
      onProgress: async (event: RotateKeyProgress) => {
        steps.push(event.step);
        // Interleave: between every step, a reader sees every connection whole.
        expect(await readAllThroughServer()).toEqual(expected);
        readsDuringRotation++;
      },
    });
    expect(result.oldKeyId).toBe(oldId);
    expect(result.newKeyId).not.toBe(oldId);
    expect(result.resealed).toBe(7);
    expect(result.resumed).toBe(false);
    expect(steps).toEqual(['next_key_ready', ...Array<string>(7).fill('resealed'), 'promoted']);
    expect(readsDuringRotation).toBe(9);
    expect(keyIds()).toEqual([result.newKeyId]);
    expect(loadMasterKey({ home, env: {} }).id).toBe(result.newKeyId);
    expect(existsSync(join(home, 'master.key.next'))).toBe(false);
    expect(statSync(join(home, 'master.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'master.key.old')).mode & 0o777).toBe(0o600);
    // A process started after the rotation reads everything with the new key alone.
    await retireOldKey({ home, store, env: {} });
    const fresh = new ConnectionService({ store, sealer: new ConnectionSealer(new FileKeyring({ home })) });
    const { details } = await fresh.details(admin, { name: 'conn-3' }, 'x');
    expect(details).toEqual(expected[3]);
  });

  it('the running server seals new connections under the new key once it is promoted', async () => {
    const result = await rotateKey({ home, store, env: {} });
    await server.create(admin, { name: 'after', type: 'HTTP', details: { a: 1 } });
    expect(keyIds()).toEqual([result.newKeyId]);
  });

  it('re-seals rows a server created under the old key during the rotation', async () => {
    let created = false;
    const result = await rotateKey({
      home,
      store,
      env: {},
      onProgress: async (event) => {
        // Created while master.key is still the old key: sealed under it.
        if (event.step === 'resealed' && !created) {
          created = true;
          await server.create(admin, { name: 'during', type: 'HTTP', details: { d: 'during-rotation' } });
        }
      },
    });
    expect(result.resealed).toBe(8);
    expect(keyIds()).toEqual([result.newKeyId]);
    expect((await server.details(admin, { name: 'during' }, 'x')).details).toEqual({ d: 'during-rotation' });
  });

  it('resumes an interrupted rotation with the key already in master.key.next', async () => {
    const next = generateMasterKey();
    writeKeyFileExclusive(join(home, 'master.key.next'), next);
    // Half done: two rows already under the next key.
    let n = 0;
    await expect(
      rotateKey({
        home,
        store,
        env: {},
        onProgress: (e) => {
          if (e.step === 'resealed' && ++n === 2) throw new Error('crash');
        },
      }),
    ).rejects.toThrow('crash');
    expect(keyIds().sort()).toEqual([loadMasterKey({ home, env: {} }).id, next.id].sort());
    expect(await readAllThroughServer()).toEqual(expected);
    const result = await rotateKey({ home, store, env: {} });
    expect(result.resumed).toBe(true);
    expect(result.newKeyId).toBe(next.id);
    expect(keyIds()).toEqual([next.id]);
    expect(await readAllThroughServer()).toEqual(expected);
  });

  it('refuses to run when QUOLL_MASTER_KEY supplies the key, changing nothing', async () => {
    const before = readFileSync(join(home, 'master.key'));
    await expect(rotateKey({ home, store, env: { QUOLL_MASTER_KEY: 'ab'.repeat(32) } })).rejects.toThrow(
      MasterKeyError,
    );
    expect(readFileSync(join(home, 'master.key')).equals(before)).toBe(true);
    expect(existsSync(join(home, 'master.key.next'))).toBe(false);
  });

  it('refuses a new key equal to the current one', async () => {
    await expect(
      rotateKey({ home, store, env: {}, newKey: loadMasterKey({ home, env: {} }) }),
    ).rejects.toThrow(/is the current one/);
  });

  it('retireOldKey deletes master.key.old after re-sealing stragglers', async () => {
    await rotateKey({ home, store, env: {} });
    expect(await retireOldKey({ home, store, env: {} })).toEqual({ resealed: 0, removed: true });
    expect(existsSync(join(home, 'master.key.old'))).toBe(false);
    expect(await retireOldKey({ home, store, env: {} })).toEqual({ resealed: 0, removed: false });
    // The server still holds the old key in memory, and everything is under the new one anyway.
    expect(await readAllThroughServer()).toEqual(expected);
  });
});

describe('runRotateKeyCommand', () => {
  it('rotates the key of a home through its database file and prints progress', async () => {
    // The command applies the real migrations; use a database made by them.
    db.close();
    rmSync(dbPath);
    rmSync(`${dbPath}-wal`, { force: true });
    rmSync(`${dbPath}-shm`, { force: true });
    const realDb = openSqliteDatabase(dbPath);
    const realStore = new SqliteConnectionStore(realDb);
    const svc = new ConnectionService({
      store: realStore,
      sealer: new ConnectionSealer(new FileKeyring({ home })),
    });
    await svc.create(admin, { name: 'c', type: 'HTTP', details: { host: 'h-value' } });
    const lines: string[] = [];
    const result = await runRotateKeyCommand({ home, env: {}, print: (l) => lines.push(l) });
    expect(result?.resealed).toBe(1);
    expect(lines.join('\n')).toContain(`re-sealed 1 connection(s) under key ${result?.newKeyId}`);
    expect((await svc.details(admin, { name: 'c' }, 'x')).details).toEqual({ host: 'h-value' });
    await runRotateKeyCommand({ home, env: {}, print: (l) => lines.push(l), retireOld: true });
    expect(lines).toContain('removed master.key.old');
    realDb.close();
  });

  it('refuses a home without a database instead of creating one', async () => {
    await expect(
      runRotateKeyCommand({ home: join(dir, 'elsewhere'), env: {}, print: () => undefined }),
    ).rejects.toThrow(/No Quoll database/);
    expect(existsSync(join(dir, 'elsewhere'))).toBe(false);
  });
});
