import { mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../store/index.js';
import type { Stores } from '../store/index.js';
import { ConnectionSealer } from './connection-sealer.js';
import { ConnectionService } from './connection-service.js';
import type { ConnectionScope } from './connection-service.js';
import { FileKeyring, StaticKeyring, createKeyring } from './keyring.js';
import { sealKeyCheck, verifyMasterKey } from './master-key-check.js';
import { MasterKeyError, generateMasterKey, writeKeyFileExclusive } from './master-key.js';
import type { MasterKey } from './master-key.js';
import { rotateClusterKey } from './rotate-cluster-key.js';
import type { RotateClusterKeyProgress } from './rotate-cluster-key.js';

// The rotation against one store, as a cluster does it (the multi-node end-to-end test is
// test/cluster/rotate-key.test.ts): keys held like nodes hold them, nodes admitted with
// verifyMasterKey, which records what each seals with.

const admin: ConnectionScope = { kind: 'admin' };
const OLD = generateMasterKey();
const NEW = generateMasterKey();

let dir: string;
let stores: Stores;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-rotate-cluster-'));
  stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') });
  await admit('node-a', OLD);
  const before = service(OLD);
  for (let i = 0; i < 5; i++)
    await before.create(admin, { name: `conn-${i}`, type: 'HTTP', details: { host: `https://h${i}`, i } });
});
afterEach(async () => {
  await stores.close();
  rmSync(dir, { recursive: true, force: true });
});
const expected = Array.from({ length: 5 }, (_, i) => ({ host: `https://h${i}`, i }));

function service(current: MasterKey, ...others: MasterKey[]): ConnectionService {
  return new ConnectionService({
    store: stores.connections,
    sealer: new ConnectionSealer(new StaticKeyring(current, others)),
  });
}
function admit(nodeId: string, current: MasterKey, ...others: MasterKey[]): Promise<void> {
  return verifyMasterKey(new StaticKeyring(current, others), stores.keyCheck, new Date().toISOString(), {
    nodeId,
  });
}
async function readAll(reader: ConnectionService): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const c of await reader.list(admin))
    out.push((await reader.details(admin, { id: c.id }, 'r')).details);
  return out;
}
async function keyIdsOfRows(): Promise<string[]> {
  const ids = new Set<string>();
  for (const c of await stores.connections.list())
    ids.add((await stores.connections.getSealed(c.id))!.sealed.keyId);
  return [...ids].sort();
}
async function codeOf(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MasterKeyError);
  return (err as MasterKeyError).code;
}
const rotate = (onProgress?: (e: RotateClusterKeyProgress) => void | Promise<void>) =>
  rotateClusterKey({
    keyring: new StaticKeyring(NEW, [OLD]),
    keyCheck: stores.keyCheck,
    store: stores.connections,
    batchSize: 2,
    ...(onProgress ? { onProgress } : {}),
  });

describe('rotateClusterKey', () => {
  it('refuses, changing nothing, while a live node still seals with the old key', async () => {
    // Step 1 on node-a (it holds the new key), step 2 on node-b only.
    await admit('node-a', OLD, NEW);
    await admit('node-b', NEW, OLD);
    const err = await rotate().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MasterKeyError);
    expect((err as MasterKeyError).code).toBe('key_rotation_pending');
    expect((err as Error).message).toContain(`node-a (key id ${OLD.id})`);
    expect(await keyIdsOfRows()).toEqual([OLD.id]);
    expect((await stores.keyCheck.ensureKeyCheck({ keyId: 'x', blob: Buffer.alloc(1) }, 't')).keyId).toBe(
      OLD.id,
    );
  });

  it('refuses, changing nothing, while a live node of a release without key rotation (no key recorded) is up', async () => {
    // node-a moved to the new key; node-old registered without recording a key (the previous
    // release does not): it may still seal with the old key, so nothing may be retired.
    await admit('node-a', NEW, OLD);
    await stores.nodes.registerNode({ id: 'node-a', url: 'http://a:8470', roles: ['api'] });
    await stores.nodes.registerNode({ id: 'node-old', url: 'http://old:8470', roles: ['api'] });
    const err = await rotate().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MasterKeyError);
    expect((err as MasterKeyError).code).toBe('key_rotation_pending');
    expect((err as Error).message).toContain('node-old (no key recorded');
    expect(await keyIdsOfRows()).toEqual([OLD.id]);
    expect(await stores.keyCheck.listRetiredKeys()).toEqual([]);
  });

  it('refuses a node that cannot open the key another live node seals with (an old config restarted mid-rollout)', async () => {
    // node-b seals with the new key (step 2); node-c comes back with the old key alone: it
    // opens the key check (still under the old key) but could not read node-b's new rows.
    await admit('node-a', OLD, NEW);
    await admit('node-b', NEW, OLD);
    const err = await admit('node-c', OLD).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MasterKeyError);
    expect((err as MasterKeyError).code).toBe('master_key_mismatch');
    expect((err as Error).message).toContain(`node-b seals with key id ${NEW.id}`);
    expect((err as Error).message).not.toContain(OLD.key.toString('base64'));
    // Holding both keys, it is admitted.
    await admit('node-c', OLD, NEW);
  });

  it('refuses a node that would seal with a key another live node does not hold (a mistyped new key), recording nothing', async () => {
    // Step 1 done on both nodes: each holds the new key, decrypt-only.
    await admit('node-a', OLD, NEW);
    await admit('node-b', OLD, NEW);
    // Step 2 on node-a, with a mistyped new key: it opens the key check (it holds the old key) and
    // reads everything, but node-b could not read what it would seal.
    const typo = generateMasterKey();
    const err = await admit('node-a', typo, OLD).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MasterKeyError);
    expect((err as MasterKeyError).code).toBe('master_key_mismatch');
    expect((err as Error).message).toContain(`would seal with key id ${typo.id}`);
    expect((err as Error).message).toContain(`node-b (holds key ids ${OLD.id}, ${NEW.id})`);
    expect((err as Error).message).not.toContain(typo.key.toString('base64'));
    // Nothing was recorded: node-a still counts as sealing with the old key, holding both.
    expect(await stores.keyCheck.nodesNotSealingWith(NEW.id)).toEqual([
      { nodeId: 'node-a', sealKeyId: OLD.id, heldKeyIds: [OLD.id, NEW.id] },
      { nodeId: 'node-b', sealKeyId: OLD.id, heldKeyIds: [OLD.id, NEW.id] },
    ]);
    // With the right new key it is admitted; so is node-b after it.
    await admit('node-a', NEW, OLD);
    await admit('node-b', NEW, OLD);
  });

  it('refuses a node that would seal with the new key before every live node holds it (step 1 skipped)', async () => {
    // node-a (admitted with the old key alone) has not had step 1.
    expect(await codeOf(admit('node-b', NEW, OLD))).toBe('master_key_mismatch');
    await admit('node-a', OLD, NEW);
    await admit('node-b', NEW, OLD);
  });

  it('does not check the keys held by a live node that recorded none (a release that records only its seal key)', async () => {
    // node-old reported only the key it seals with, as the release before this one does.
    await stores.keyCheck.admitNode(
      sealKeyCheck(new ConnectionSealer(new StaticKeyring(OLD))),
      't',
      {
        nodeId: 'node-old',
        sealKeyId: OLD.id,
      },
      () => undefined,
    );
    await admit('node-a', OLD, NEW);
    await admit('node-b', NEW, OLD);
  });

  it('re-seals the key check and every row, reads working at each step, then retires the old key', async () => {
    // Step 1 (every node holds the new key, decrypt-only) and step 2 (it seals with it).
    await admit('node-a', OLD, NEW);
    await admit('node-a', NEW, OLD);
    const node = service(NEW, OLD);
    const steps: string[] = [];
    const result = await rotate(async (event) => {
      steps.push(event.step);
      expect(await readAll(node)).toEqual(expected);
    });
    expect(steps).toEqual(['key_check_resealed', ...Array<string>(5).fill('resealed'), 'retired']);
    expect(result).toEqual({ newKeyId: NEW.id, resealed: 5, retiredKeyIds: [OLD.id] });
    expect(await keyIdsOfRows()).toEqual([NEW.id]);
    // Step 4: the old key is dropped from the nodes; the new key alone reads everything.
    expect(await readAll(service(NEW))).toEqual(expected);
    await admit('node-a', NEW);
    // A node started with the old key (alone, or still as its sealing key) is refused.
    expect(await codeOf(admit('node-c', OLD))).toBe('master_key_retired');
    expect(await codeOf(admit('node-c', OLD, NEW))).toBe('master_key_retired');
    expect(await codeOf(admit('node-c', generateMasterKey()))).toBe('master_key_mismatch');
    // Run again: nothing left to do.
    expect(await rotate()).toEqual({ newKeyId: NEW.id, resealed: 0, retiredKeyIds: [OLD.id] });
  });

  it('resumes an interrupted rotation where it stopped', async () => {
    await admit('node-a', NEW, OLD);
    let seen = 0;
    const crash = new Error('interrupted');
    await expect(
      rotate((event) => {
        if (event.step === 'resealed' && ++seen === 2) throw crash;
      }),
    ).rejects.toBe(crash);
    expect((await keyIdsOfRows()).sort()).toEqual([NEW.id, OLD.id].sort());
    expect(await stores.keyCheck.listRetiredKeys()).toEqual([]);
    // Meanwhile a node holding only the old key can no longer join: the check is under the new key.
    expect(await codeOf(admit('node-c', OLD))).toBe('master_key_mismatch');
    // Nor one holding only the new key (step 4 begun before step 3 finished): rows are still
    // sealed under the old key, which it could not read.
    const early = await admit('node-c', NEW).catch((e: unknown) => e);
    expect(early).toBeInstanceOf(MasterKeyError);
    expect((early as MasterKeyError).code).toBe('master_key_mismatch');
    expect((early as Error).message).toContain(`lacks key id(s) ${OLD.id}`);
    expect(await stores.keyCheck.nodesNotSealingWith(NEW.id)).toEqual([]);
    const result = await rotate();
    expect(result.resealed).toBe(3);
    expect(await keyIdsOfRows()).toEqual([NEW.id]);
    expect(result.retiredKeyIds).toEqual([OLD.id]);
  });

  it('retires the old key when resumed after its last row was re-sealed (nothing left names it)', async () => {
    await admit('node-a', NEW, OLD);
    let seen = 0;
    const crash = new Error('interrupted after the last row');
    await expect(
      rotate((event) => {
        if (event.step === 'resealed' && ++seen === 5) throw crash;
      }),
    ).rejects.toBe(crash);
    expect(await keyIdsOfRows()).toEqual([NEW.id]);
    expect(await stores.keyCheck.listRetiredKeys()).toEqual([]);
    const result = await rotate();
    expect(result).toEqual({ newKeyId: NEW.id, resealed: 0, retiredKeyIds: [OLD.id] });
    expect(await codeOf(admit('node-c', OLD, NEW))).toBe('master_key_retired');
  });

  it('run too early (the new key still decrypt-only on the command) it re-seals nothing and retires nothing', async () => {
    await admit('node-a', OLD, NEW);
    const result = await rotateClusterKey({
      keyring: new StaticKeyring(OLD, [NEW]),
      keyCheck: stores.keyCheck,
      store: stores.connections,
    });
    expect(result).toEqual({ newKeyId: OLD.id, resealed: 0, retiredKeyIds: [] });
    // The next key is still good: step 2 goes on.
    await admit('node-a', NEW, OLD);
  });

  it('stops with master_key_unknown on a row sealed under a key it was not given, and resumes once given it', async () => {
    const stray = generateMasterKey();
    await service(stray).create(admin, { name: 'stray', type: 'HTTP', details: { s: 1 } });
    await admit('node-a', NEW, OLD, stray);
    const err = await rotate().catch((e: unknown) => e);
    expect((err as MasterKeyError).code).toBe('master_key_unknown');
    expect((err as Error).message).toContain(`key id ${stray.id}`);
    expect((err as Error).message).toContain('stray');
    const result = await rotateClusterKey({
      keyring: new StaticKeyring(NEW, [OLD, stray]),
      keyCheck: stores.keyCheck,
      store: stores.connections,
    });
    expect(await keyIdsOfRows()).toEqual([NEW.id]);
    expect(result.retiredKeyIds.sort()).toEqual([OLD.id, stray.id].sort());
  });

  it('refuses a new key that was retired before, and a command without the database key', async () => {
    await admit('node-a', NEW, OLD);
    await rotate();
    // Rotating back to the old key: refused.
    await admit('node-a', OLD, NEW).catch(() => undefined);
    expect(
      await codeOf(
        rotateClusterKey({
          keyring: new StaticKeyring(OLD, [NEW]),
          keyCheck: stores.keyCheck,
          store: stores.connections,
        }),
      ),
    ).toBe('master_key_retired');
    // A third key, without the current one: it cannot open the key check.
    const third = generateMasterKey();
    expect(
      await codeOf(
        rotateClusterKey({
          keyring: new StaticKeyring(third),
          keyCheck: stores.keyCheck,
          store: stores.connections,
        }),
      ),
    ).toBe('master_key_mismatch');
  });

  it('a node given the new key without the old one is refused before the rotation (it could not read)', async () => {
    expect(await codeOf(admit('node-b', NEW))).toBe('master_key_mismatch');
    expect(await codeOf(admit('node-b', NEW))).not.toBe('master_key_retired');
  });

  it('works the same with key files: master.key.next, then master.key / master.key.old, then no old file', async () => {
    // A node whose keys are files in its home, holding OLD as master.key.
    const home = join(dir, 'node-home');
    mkdirSync(home, { mode: 0o700 });
    writeKeyFileExclusive(join(home, 'master.key'), OLD);
    const restart = async (): Promise<ConnectionService> => {
      const keyring = new FileKeyring({ home });
      await verifyMasterKey(keyring, stores.keyCheck, new Date().toISOString(), { nodeId: 'node-a' });
      return new ConnectionService({ store: stores.connections, sealer: new ConnectionSealer(keyring) });
    };
    expect(await readAll(await restart())).toEqual(expected);
    // Step 1: the new key as master.key.next.
    writeKeyFileExclusive(join(home, 'master.key.next'), NEW);
    expect(await readAll(await restart())).toEqual(expected);
    // Step 2: master.key -> master.key.old, master.key.next -> master.key.
    renameSync(join(home, 'master.key'), join(home, 'master.key.old'));
    renameSync(join(home, 'master.key.next'), join(home, 'master.key'));
    const node = await restart();
    // Step 3, with the node's home as the command's keys.
    const result = await rotateClusterKey({
      keyring: createKeyring({ home, env: {} }),
      keyCheck: stores.keyCheck,
      store: stores.connections,
    });
    expect(result).toEqual({ newKeyId: NEW.id, resealed: 5, retiredKeyIds: [OLD.id] });
    expect(await readAll(node)).toEqual(expected);
    // Step 4: the old file goes; the node reads everything with the new key alone.
    unlinkSync(join(home, 'master.key.old'));
    expect(await readAll(await restart())).toEqual(expected);
  });
});
