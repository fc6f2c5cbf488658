import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
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
import { MasterKeyError, generateMasterKey, loadMasterKey, writeKeyFileExclusive } from './master-key.js';
import { retireOldKey, rotateKey } from './rotate-key.js';
import type { RotateKeyProgress } from './rotate-key.js';

const admin: ConnectionScope = { kind: 'admin' };

let dir: string;
let home: string;
let dbPath: string;
let stores: Stores;
let store: ConnectionStore;
/** Plays the running server: its own keyring, loaded before the rotation starts. */
let server: ConnectionService;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-rotate-'));
  home = join(dir, 'home');
  dbPath = join(home, 'quoll.db');
  mkdirSync(home);
  stores = await openStore({ kind: 'sqlite', path: dbPath });
  store = stores.connections;
  server = new ConnectionService({ store, sealer: new ConnectionSealer(new FileKeyring({ home })) });
  for (let i = 0; i < 7; i++) {
    await server.create(admin, {
      name: `conn-${i}`,
      type: 'HTTP',
      details: { host: `https://h${i}.example.com`, i },
    });
  }
});
afterEach(async () => {
  await stores.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The distinct ids of the keys that sealed the stored connections, as the store reports them. */
async function keyIds(): Promise<string[]> {
  const ids = new Set<string>();
  for (const c of await store.list()) {
    const sealed = await store.getSealed(c.id);
    if (sealed) ids.add(sealed.sealed.keyId);
  }
  return [...ids];
}

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
    expect(await keyIds()).toEqual([oldId]);
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
    expect(await keyIds()).toEqual([result.newKeyId]);
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
    expect(await keyIds()).toEqual([result.newKeyId]);
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
    expect(await keyIds()).toEqual([result.newKeyId]);
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
    expect((await keyIds()).sort()).toEqual([loadMasterKey({ home, env: {} }).id, next.id].sort());
    expect(await readAllThroughServer()).toEqual(expected);
    const result = await rotateKey({ home, store, env: {} });
    expect(result.resumed).toBe(true);
    expect(result.newKeyId).toBe(next.id);
    expect(await keyIds()).toEqual([next.id]);
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
