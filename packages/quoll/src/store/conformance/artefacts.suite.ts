import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobNotFoundError } from '../../blobs/index.js';
import { UNREPORTED_KEY_ID } from '../../connections/index.js';
import type { SealedDetails } from '../../connections/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores } from './make-stores.js';

/** The key-check contract, run against one backend. */
export function keyCheckStoreSuite(backend: string, makeStores: MakeStores): void {
  describe(`${backend}: KeyCheckStore`, () => {
    let stores: Stores;
    beforeEach(async () => {
      stores = await makeStores();
    });
    afterEach(async () => {
      await stores.close();
    });

    const sealed = (keyId: string, byte: number): SealedDetails => ({ keyId, blob: Buffer.alloc(45, byte) });

    it('keeps the first key check stored and returns it to every later caller', async () => {
      expect(await stores.keyCheck.ensureKeyCheck(sealed('k1', 1), 't1')).toEqual(sealed('k1', 1));
      expect(await stores.keyCheck.ensureKeyCheck(sealed('k2', 2), 't2')).toEqual(sealed('k1', 1));
    });

    const node = (id: string) => ({ id, url: `http://${id}:8470`, roles: ['api' as const] });
    const accept = (): void => undefined;

    it('admitNode stores the first key check, hands it to admit with the retired keys, and records the node', async () => {
      const seen: unknown[] = [];
      const state = await stores.keyCheck.admitNode(
        sealed('k1', 1),
        't1',
        { nodeId: 'n1', sealKeyId: 'k1' },
        (s) => {
          seen.push(s);
        },
      );
      expect(state).toEqual({ check: sealed('k1', 1), retired: [], nodes: [], retiring: [] });
      expect(seen).toEqual([state]);
      // A later node gets the first check, not its own candidate.
      const second = await stores.keyCheck.admitNode(
        sealed('k2', 2),
        't2',
        { nodeId: 'n2', sealKeyId: 'k2' },
        accept,
      );
      expect(second.check).toEqual(sealed('k1', 1));
      // admit sees the other live nodes and what each seals with (not the node being admitted).
      expect(second.nodes).toEqual([{ nodeId: 'n1', sealKeyId: 'k1' }]);
      // Neither has a cluster_nodes row yet: both count as live (starting).
      expect(await stores.keyCheck.nodesNotSealingWith('k1')).toEqual([{ nodeId: 'n2', sealKeyId: 'k2' }]);
      expect(await stores.keyCheck.nodesNotSealingWith('k3')).toEqual([
        { nodeId: 'n1', sealKeyId: 'k1' },
        { nodeId: 'n2', sealKeyId: 'k2' },
      ]);
    });

    it('admitNode records nothing when admit refuses', async () => {
      await stores.keyCheck.ensureKeyCheck(sealed('k1', 1), 't1');
      const refusal = new Error('refused');
      await expect(
        stores.keyCheck.admitNode(sealed('k2', 2), 't2', { nodeId: 'n1', sealKeyId: 'k2' }, () => {
          throw refusal;
        }),
      ).rejects.toBe(refusal);
      expect(await stores.keyCheck.nodesNotSealingWith('k1')).toEqual([]);
    });

    it('a node counts while up, and not once stopped or lost after it reported', async () => {
      await stores.keyCheck.admitNode(sealed('k1', 1), 't1', { nodeId: 'n1', sealKeyId: 'k1' }, accept);
      await stores.nodes.registerNode(node('n1'));
      expect(await stores.keyCheck.nodesNotSealingWith('k2')).toEqual([{ nodeId: 'n1', sealKeyId: 'k1' }]);
      // Its stop is stamped after its report (the clock moves on; not a timing assertion).
      await new Promise((resolve) => setTimeout(resolve, 5));
      await stores.nodes.markStopped('n1');
      expect(await stores.keyCheck.nodesNotSealingWith('k2')).toEqual([]);
      // Started again (reported after its row was last seen): it counts before it registers.
      await new Promise((resolve) => setTimeout(resolve, 5));
      await stores.keyCheck.admitNode(sealed('k1', 1), 't2', { nodeId: 'n1', sealKeyId: 'k1' }, accept);
      expect(await stores.keyCheck.nodesNotSealingWith('k2')).toEqual([{ nodeId: 'n1', sealKeyId: 'k1' }]);
    });

    it('a live node that never reported its key (a release without key rotation) counts as pending', async () => {
      // A node of the previous release registers but records no key: it may seal with any key,
      // so neither the rotation nor the retirement may go on while it is up.
      await stores.keyCheck.admitNode(sealed('k2', 2), 't1', { nodeId: 'n1', sealKeyId: 'k2' }, accept);
      await stores.nodes.registerNode(node('n1'));
      await stores.nodes.registerNode(node('old'));
      expect(await stores.keyCheck.nodesNotSealingWith('k2')).toEqual([
        { nodeId: 'old', sealKeyId: UNREPORTED_KEY_ID },
      ]);
      const blocked = await stores.keyCheck.retireKeys('k2', ['k1'], 'r1');
      expect(blocked?.pendingNodes).toEqual([{ nodeId: 'old', sealKeyId: UNREPORTED_KEY_ID }]);
      expect(await stores.keyCheck.listRetiredKeys()).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 5));
      await stores.nodes.markStopped('old');
      expect(await stores.keyCheck.nodesNotSealingWith('k2')).toEqual([]);
    });

    it('admitNode records every key a node holds, and admit sees them; a report without them records none', async () => {
      await stores.keyCheck.admitNode(
        sealed('k1', 1),
        't1',
        { nodeId: 'n1', sealKeyId: 'k1', heldKeyIds: ['k1', 'k2'] },
        accept,
      );
      const state = await stores.keyCheck.admitNode(
        sealed('k1', 1),
        't2',
        { nodeId: 'n2', sealKeyId: 'k1', heldKeyIds: ['k1'] },
        accept,
      );
      expect(state.nodes).toEqual([{ nodeId: 'n1', sealKeyId: 'k1', heldKeyIds: ['k1', 'k2'] }]);
      expect(await stores.keyCheck.nodesNotSealingWith('k2')).toEqual([
        { nodeId: 'n1', sealKeyId: 'k1', heldKeyIds: ['k1', 'k2'] },
        { nodeId: 'n2', sealKeyId: 'k1', heldKeyIds: ['k1'] },
      ]);
      // n1 restarted by a release that records only its seal key (a roll back): the keys it
      // recorded at its earlier start no longer count (its report is newer; not a timing assertion).
      await new Promise((resolve) => setTimeout(resolve, 5));
      await stores.keyCheck.admitNode(sealed('k1', 1), 't3', { nodeId: 'n1', sealKeyId: 'k1' }, accept);
      const third = await stores.keyCheck.admitNode(sealed('k1', 1), 't4', null, accept);
      expect(third.nodes).toEqual([
        { nodeId: 'n1', sealKeyId: 'k1' },
        { nodeId: 'n2', sealKeyId: 'k1', heldKeyIds: ['k1'] },
      ]);
    });

    it('readKeyStatus: the key check, live nodes, retiring and retired keys, and connections by key id', async () => {
      expect(await stores.keyCheck.readKeyStatus()).toEqual({
        checkKeyId: null,
        retiring: [],
        retired: [],
        nodes: [],
        connections: [],
      });
      await stores.keyCheck.admitNode(
        sealed('k1', 1),
        't1',
        { nodeId: 'n1', sealKeyId: 'k1', heldKeyIds: ['k1', 'k2'] },
        accept,
      );
      await stores.nodes.registerNode(node('n1'));
      await stores.nodes.registerNode(node('old'));
      for (const [id, keyId] of [
        ['c1', 'k1'],
        ['c2', 'k1'],
        ['c3', 'k2'],
      ] as const) {
        await stores.connections.createConnection({
          id,
          name: id,
          type: 'HTTP',
          sealedDetails: sealed(keyId, 7),
          createdAt: '2024-12-09T00:00:00.000Z',
        });
      }
      await stores.keyCheck.replaceKeyCheck('k1', sealed('k2', 2), 't2');
      expect(await stores.keyCheck.readKeyStatus()).toEqual({
        checkKeyId: 'k2',
        retiring: ['k1'],
        retired: [],
        nodes: [
          { nodeId: 'n1', sealKeyId: 'k1', heldKeyIds: ['k1', 'k2'] },
          { nodeId: 'old', sealKeyId: UNREPORTED_KEY_ID },
        ],
        connections: [
          { keyId: 'k1', count: 2 },
          { keyId: 'k2', count: 1 },
        ],
      });
      await stores.nodes.markStopped('old');
      await stores.keyCheck.admitNode(
        sealed('k2', 2),
        't3',
        { nodeId: 'n1', sealKeyId: 'k2', heldKeyIds: ['k2', 'k1'] },
        accept,
      );
      await stores.connections.replaceSealed('c1', 'k1', sealed('k2', 8));
      await stores.connections.replaceSealed('c2', 'k1', sealed('k2', 8));
      expect(await stores.keyCheck.retireKeys('k2', ['k1'], 'r1')).toBeNull();
      expect(await stores.keyCheck.readKeyStatus()).toEqual({
        checkKeyId: 'k2',
        retiring: [],
        retired: [{ keyId: 'k1', at: 'r1' }],
        nodes: [{ nodeId: 'n1', sealKeyId: 'k2', heldKeyIds: ['k2', 'k1'] }],
        connections: [{ keyId: 'k2', count: 3 }],
      });
    });

    it('replaceKeyCheck replaces only while the key check is under the expected key', async () => {
      await stores.keyCheck.ensureKeyCheck(sealed('k1', 1), 't1');
      expect(await stores.keyCheck.replaceKeyCheck('k0', sealed('k2', 2), 't2')).toBe(false);
      expect(await stores.keyCheck.replaceKeyCheck('k1', sealed('k2', 2), 't2')).toBe(true);
      expect(await stores.keyCheck.ensureKeyCheck(sealed('k3', 3), 't3')).toEqual(sealed('k2', 2));
    });

    it('the key a replaced key check was under is retired by the next retireKeys, though no row names it', async () => {
      await stores.keyCheck.ensureKeyCheck(sealed('k1', 1), 't1');
      await stores.keyCheck.replaceKeyCheck('k1', sealed('k2', 2), 't2');
      expect(await stores.keyCheck.listRetiredKeys()).toEqual([]);
      // Until then admitNode hands it to admit as retiring: rows may still be sealed under it.
      const during = await stores.keyCheck.admitNode(sealed('k2', 2), 't3', null, accept);
      expect(during.retiring).toEqual(['k1']);
      expect(await stores.keyCheck.retireKeys('k2', [], 'r1')).toBeNull();
      expect(await stores.keyCheck.listRetiredKeys()).toEqual([{ keyId: 'k1', at: 'r1' }]);
      expect((await stores.keyCheck.admitNode(sealed('k2', 2), 't4', null, accept)).retiring).toEqual([]);
    });

    it('retireKeys retires only once the key check, every live node and every connection use the key', async () => {
      await stores.keyCheck.admitNode(sealed('k1', 1), 't1', { nodeId: 'n1', sealKeyId: 'k1' }, accept);
      await stores.nodes.registerNode(node('n1'));
      const made = await stores.connections.createConnection({
        id: 'c1',
        name: 'c1',
        type: 'HTTP',
        sealedDetails: sealed('k1', 7),
        createdAt: '2024-12-09T00:00:00.000Z',
      });
      expect(made.outcome).toBe('created');
      // Nothing is under k2 yet: all three say why.
      expect(await stores.keyCheck.retireKeys('k2', ['k1'], 'r1')).toEqual({
        checkKeyId: 'k1',
        pendingNodes: [{ nodeId: 'n1', sealKeyId: 'k1' }],
        connectionKeyIds: ['k1'],
      });
      await stores.keyCheck.replaceKeyCheck('k1', sealed('k2', 2), 't2');
      await stores.keyCheck.admitNode(sealed('k2', 2), 't2', { nodeId: 'n1', sealKeyId: 'k2' }, accept);
      expect(await stores.keyCheck.retireKeys('k2', ['k1'], 'r2')).toEqual({
        checkKeyId: 'k2',
        pendingNodes: [],
        connectionKeyIds: ['k1'],
      });
      expect(await stores.connections.replaceSealed('c1', 'k1', sealed('k2', 8))).toBe(true);
      expect(await stores.keyCheck.listRetiredKeys()).toEqual([]);
      expect(await stores.keyCheck.retireKeys('k2', ['k1', 'k2'], 'r3')).toBeNull();
      // The key kept is never retired; retiring twice keeps the first time.
      expect(await stores.keyCheck.retireKeys('k2', ['k1'], 'r4')).toBeNull();
      expect(await stores.keyCheck.listRetiredKeys()).toEqual([{ keyId: 'k1', at: 'r3' }]);
      const state = await stores.keyCheck.admitNode(sealed('k9', 9), 't3', null, accept);
      expect(state.retired).toEqual([{ keyId: 'k1', at: 'r3' }]);
    });
  });
}

/** The shared artefact storage contract (backends that have one). */
export function sharedBlobStorageSuite(backend: string, makeStores: MakeStores): void {
  describe(`${backend}: SharedBlobStorage`, () => {
    let stores: Stores;
    beforeEach(async () => {
      stores = await makeStores();
    });
    afterEach(async () => {
      await stores.close();
    });

    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    async function* pieces(b: Buffer, size: number): AsyncIterable<Uint8Array> {
      for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
    }
    async function readAll(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
      const out: Buffer[] = [];
      for await (const p of it) out.push(Buffer.from(p));
      return Buffer.concat(out);
    }

    it('stores a blob across several chunks and reads it back byte for byte', async () => {
      const blobs = stores.sharedBlobs;
      if (blobs === null) throw new Error('no shared blob storage');
      const bytes = Buffer.alloc(9 * 1024 * 1024 + 123);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) % 251;
      const id = sha(bytes);
      expect(await blobs.has(id)).toBe(false);
      await blobs.put(id, bytes.length, () => pieces(bytes, 1_000_003));
      expect(await blobs.has(id)).toBe(true);
      expect((await readAll(blobs.read(id))).equals(bytes)).toBe(true);
    });

    it('storing the same content twice, also at once, keeps one copy', async () => {
      const blobs = stores.sharedBlobs;
      if (blobs === null) throw new Error('no shared blob storage');
      const bytes = Buffer.from('the same model twice');
      const id = sha(bytes);
      await Promise.all([
        blobs.put(id, bytes.length, () => pieces(bytes, 5)),
        blobs.put(id, bytes.length, () => pieces(bytes, 7)),
      ]);
      await blobs.put(id, bytes.length, () => pieces(bytes, 3));
      expect((await readAll(blobs.read(id))).toString()).toBe('the same model twice');
    });

    it('a put whose bytes do not add up to the size stores nothing; an unknown blob is BlobNotFoundError', async () => {
      const blobs = stores.sharedBlobs;
      if (blobs === null) throw new Error('no shared blob storage');
      const bytes = Buffer.from('short');
      await expect(blobs.put(sha(bytes), 99, () => pieces(bytes, 2))).rejects.toThrow(/expected 99/);
      expect(await blobs.has(sha(bytes))).toBe(false);
      await expect(readAll(blobs.read('0'.repeat(64)))).rejects.toBeInstanceOf(BlobNotFoundError);
    });
  });
}
