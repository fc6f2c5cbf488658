import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobNotFoundError } from '../../blobs/index.js';
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
