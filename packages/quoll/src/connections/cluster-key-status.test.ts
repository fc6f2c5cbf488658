import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../store/index.js';
import type { Stores } from '../store/index.js';
import { clusterKeyStatus } from './cluster-key-status.js';
import { ConnectionSealer } from './connection-sealer.js';
import { ConnectionService } from './connection-service.js';
import { StaticKeyring } from './keyring.js';
import { verifyMasterKey } from './master-key-check.js';
import { generateMasterKey } from './master-key.js';
import type { MasterKey } from './master-key.js';
import { rotateClusterKey } from './rotate-cluster-key.js';

// `quoll admin rotate-key --status` along a rollout, on one store (nodes admitted with
// verifyMasterKey, as they are at their start).

const OLD = generateMasterKey();
const NEW = generateMasterKey();

let dir: string;
let stores: Stores;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-key-status-'));
  stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') });
});
afterEach(async () => {
  await stores.close();
  rmSync(dir, { recursive: true, force: true });
});

function admit(nodeId: string, current: MasterKey, ...others: MasterKey[]): Promise<void> {
  return verifyMasterKey(new StaticKeyring(current, others), stores.keyCheck, new Date().toISOString(), {
    nodeId,
  });
}
async function createConnections(n: number, key: MasterKey): Promise<void> {
  const service = new ConnectionService({
    store: stores.connections,
    sealer: new ConnectionSealer(new StaticKeyring(key)),
  });
  for (let i = 0; i < n; i++)
    await service.create({ kind: 'admin' }, { name: `conn-${key.id}-${i}`, type: 'HTTP', details: { i } });
}

describe('clusterKeyStatus', () => {
  it('before any node started: no key check, nothing to rotate', async () => {
    const status = await clusterKeyStatus(stores.keyCheck);
    expect(status.checkKeyId).toBeNull();
    expect(status.nodes).toEqual([]);
    expect(status.keys).toEqual([]);
    expect(status.rotation).toMatchObject({
      targetKeyId: null,
      canProceed: false,
      toReseal: 0,
      toRetire: [],
    });
    expect(status.rotation.blockers).toEqual([
      { code: null, message: expect.stringMatching(/No node has started/) as string },
    ]);
  });

  it('follows a rollout: what each node seals with and holds, connections by key, and what blocks the rotation', async () => {
    await admit('node-a', OLD);
    await admit('node-b', OLD);
    await createConnections(3, OLD);
    // Nothing being rotated: every node, the key check and every row under one key.
    let status = await clusterKeyStatus(stores.keyCheck);
    expect(status.checkKeyId).toBe(OLD.id);
    expect(status.nodes).toEqual([
      { nodeId: 'node-a', sealKeyId: OLD.id, heldKeyIds: [OLD.id] },
      { nodeId: 'node-b', sealKeyId: OLD.id, heldKeyIds: [OLD.id] },
    ]);
    expect(status.keys).toEqual([
      {
        keyId: OLD.id,
        state: 'active',
        retiredAt: null,
        keyCheck: true,
        connections: 3,
        sealedBy: ['node-a', 'node-b'],
        heldBy: ['node-a', 'node-b'],
      },
    ]);
    expect(status.rotation).toEqual({
      targetKeyId: OLD.id,
      targetFrom: 'nodes',
      canProceed: true,
      toReseal: 0,
      toRetire: [],
      blockers: [],
    });

    // Step 1 on both, step 2 on node-a only: the nodes disagree.
    await admit('node-a', OLD, NEW);
    await admit('node-b', OLD, NEW);
    await admit('node-a', NEW, OLD);
    status = await clusterKeyStatus(stores.keyCheck);
    expect(status.keys.map((k) => [k.keyId, k.connections, k.sealedBy, k.heldBy])).toEqual(
      [
        [OLD.id, 3, ['node-b'], ['node-a', 'node-b']],
        [NEW.id, 0, ['node-a'], ['node-a', 'node-b']],
      ].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
    );
    expect(status.rotation.targetKeyId).toBeNull();
    expect(status.rotation.canProceed).toBe(false);
    expect(status.rotation.blockers).toEqual([
      {
        code: 'key_rotation_pending',
        message: expect.stringContaining(`node-a (key id ${NEW.id}), node-b (key id ${OLD.id})`) as string,
      },
    ]);
    // Given the keys the rotation would be given, it names the node that is behind.
    status = await clusterKeyStatus(stores.keyCheck, { keyring: new StaticKeyring(NEW, [OLD]) });
    expect(status.rotation).toMatchObject({ targetKeyId: NEW.id, targetFrom: 'command', canProceed: false });
    expect(status.rotation.blockers).toEqual([
      {
        code: 'key_rotation_pending',
        message: expect.stringContaining(`node-b (key id ${OLD.id})`) as string,
      },
    ]);

    // Step 2 on node-b: ready; without the old key the command could not re-seal.
    await admit('node-b', NEW, OLD);
    status = await clusterKeyStatus(stores.keyCheck);
    expect(status.rotation).toEqual({
      targetKeyId: NEW.id,
      targetFrom: 'nodes',
      canProceed: true,
      toReseal: 3,
      toRetire: [OLD.id],
      blockers: [],
    });
    status = await clusterKeyStatus(stores.keyCheck, { keyring: new StaticKeyring(NEW) });
    expect(status.rotation.blockers.map((b) => b.code)).toEqual([
      'master_key_mismatch',
      'master_key_unknown',
    ]);
    expect(status.rotation.blockers[1]!.message).toContain(`${OLD.id} (3)`);

    // Interrupted after one row: the old key is retiring, two rows are left.
    const crash = new Error('interrupted');
    await expect(
      rotateClusterKey({
        keyring: new StaticKeyring(NEW, [OLD]),
        keyCheck: stores.keyCheck,
        store: stores.connections,
        onProgress: (event) => {
          if (event.step === 'resealed') throw crash;
        },
      }),
    ).rejects.toBe(crash);
    status = await clusterKeyStatus(stores.keyCheck);
    expect(status.checkKeyId).toBe(NEW.id);
    expect(status.keys.find((k) => k.keyId === OLD.id)).toMatchObject({
      state: 'retiring',
      keyCheck: false,
      connections: 2,
    });
    expect(status.rotation).toMatchObject({ canProceed: true, toReseal: 2, toRetire: [OLD.id] });

    // Finished: the old key is retired, nothing is left to do; rotating back to it is blocked.
    await rotateClusterKey({
      keyring: new StaticKeyring(NEW, [OLD]),
      keyCheck: stores.keyCheck,
      store: stores.connections,
    });
    status = await clusterKeyStatus(stores.keyCheck);
    const old = status.keys.find((k) => k.keyId === OLD.id);
    expect(old).toMatchObject({ state: 'retired', connections: 0, sealedBy: [] });
    expect(old?.retiredAt).toEqual(expect.any(String) as string);
    expect(status.keys[0]).toMatchObject({ keyId: NEW.id, state: 'active', keyCheck: true, connections: 3 });
    expect(status.rotation).toEqual({
      targetKeyId: NEW.id,
      targetFrom: 'nodes',
      canProceed: true,
      toReseal: 0,
      toRetire: [],
      blockers: [],
    });
    status = await clusterKeyStatus(stores.keyCheck, { keyring: new StaticKeyring(OLD, [NEW]) });
    expect(status.rotation.blockers.map((b) => b.code)).toContain('master_key_retired');
  });

  it('a live node that recorded no key blocks; one that recorded no held keys shows them as unknown', async () => {
    await admit('node-a', OLD);
    await stores.nodes.registerNode({ id: 'node-old', url: 'http://old:8470', roles: ['api'] });
    await stores.keyCheck.admitNode(
      { keyId: OLD.id, blob: Buffer.alloc(1) },
      't',
      { nodeId: 'node-mid', sealKeyId: OLD.id },
      () => undefined,
    );
    const status = await clusterKeyStatus(stores.keyCheck);
    expect(status.nodes).toEqual([
      { nodeId: 'node-a', sealKeyId: OLD.id, heldKeyIds: [OLD.id] },
      { nodeId: 'node-mid', sealKeyId: OLD.id, heldKeyIds: null },
      { nodeId: 'node-old', sealKeyId: null, heldKeyIds: null },
    ]);
    expect(status.rotation.canProceed).toBe(false);
    expect(status.rotation.blockers).toEqual([
      {
        code: 'key_rotation_pending',
        message: expect.stringContaining('node-old recorded no key') as string,
      },
    ]);
  });
});
