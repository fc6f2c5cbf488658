import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { SharedBlobStorage } from './shared-blob-storage.js';

/**
 * Copies blob `sha256` from the shared storage to `dest`: written to `tmpPath` (on the same file
 * system), hashed as it streams, and renamed to `dest` only when its SHA-256 is the one asked
 * for, so `dest` never holds a partial or corrupt copy.
 *
 * @throws BlobNotFoundError when none is stored; Error when the bytes read hash to another SHA.
 * @example
 * await copySharedBlob(shared, sha, join(dir, 'source.zip'));
 */
export async function copySharedBlob(
  shared: SharedBlobStorage,
  sha256: string,
  dest: string,
  tmpPath = `${dest}.${randomUUID()}.part`,
): Promise<void> {
  const hash = createHash('sha256');
  try {
    await pipeline(
      Readable.from(shared.read(sha256)),
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      }),
      createWriteStream(tmpPath),
    );
    const got = hash.digest('hex');
    if (got !== sha256) {
      throw new Error(`blob ${sha256} read from the shared storage has SHA-256 ${got}; refusing to use it`);
    }
    await rename(tmpPath, dest);
  } finally {
    await rm(tmpPath, { force: true });
  }
}

/** SHA-256 (hex) of a file's bytes, streamed. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
