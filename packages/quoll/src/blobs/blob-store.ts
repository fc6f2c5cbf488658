import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApiError } from '../server/api-error.js';

/** A stream received to a temporary file, hashed on the way. */
export interface ReceivedFile {
  path: string;
  sha256: string;
  size: number;
}

/**
 * Content-addressed files under `<home>/blobs/sha256/<ab>/<sha>`. Uploads stream to
 * `<home>/tmp` while being hashed and measured, so a body over the cap is cut off early and
 * nothing partial is ever visible under `blobs/`.
 */
export class BlobStore {
  private readonly blobDir: string;
  private readonly tmpDir: string;

  constructor(home: string) {
    this.blobDir = join(home, 'blobs', 'sha256');
    this.tmpDir = join(home, 'tmp');
  }

  async init(): Promise<void> {
    await mkdir(this.blobDir, { recursive: true });
    // Leftovers of uploads cut short by a crash are garbage.
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
  }

  /** Where the blob with this SHA-256 lives (whether or not it exists). */
  pathOf(sha256: string): string {
    return join(this.blobDir, sha256.slice(0, 2), sha256);
  }

  /**
   * Streams `source` to a temporary file. Past `maxBytes` it stops reading, deletes the
   * partial file and throws `payload_too_large` naming the cap.
   */
  async receive(source: Readable, maxBytes: number, what = 'upload'): Promise<ReceivedFile> {
    const path = join(this.tmpDir, randomUUID());
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > maxBytes) {
          done(
            new ApiError(
              'payload_too_large',
              `The ${what} is larger than the cap of ${maxBytes} bytes; send a smaller file.`,
              {
                maxBytes,
              },
            ),
          );
          return;
        }
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(path));
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    return { path, sha256: hash.digest('hex'), size };
  }

  /** Moves a received file to its content address (dropping it if the blob already exists). */
  async commit(file: ReceivedFile): Promise<string> {
    const dest = this.pathOf(file.sha256);
    await mkdir(join(this.blobDir, file.sha256.slice(0, 2)), { recursive: true });
    if (await exists(dest)) {
      await rm(file.path, { force: true });
    } else {
      await rename(file.path, dest);
    }
    return dest;
  }

  /** Deletes a received file that will not be kept. */
  async discard(file: ReceivedFile | { path: string }): Promise<void> {
    await rm(file.path, { force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
