import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApiError } from '../errors/index.js';
import { pathExists } from '../files/index.js';
import { copySharedBlob, sha256OfFile } from './copy-shared-blob.js';
import { BlobNotFoundError } from './shared-blob-storage.js';
import type { SharedBlobStorage } from './shared-blob-storage.js';

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
 *
 * With a {@link SharedBlobStorage} (a node of a cluster) the shared storage holds the
 * artefacts and `blobs/` is this node's cache of them: a committed blob is stored there
 * first, and {@link BlobStore.localPath} fetches a missing one, checking its SHA-256 before it
 * is used (a cached copy is checked once per process too).
 */
export class BlobStore {
  private readonly blobDir: string;
  private readonly tmpDir: string;
  private readonly shared: SharedBlobStorage | null;
  /** SHAs whose cached file this process has checked (or written itself). */
  private readonly verified = new Set<string>();
  private readonly fetching = new Map<string, Promise<string>>();

  /**
   * @param home the node's home directory.
   * @param shared where artefacts live for every node; null for the embedded home. @default null
   */
  constructor(home: string, shared: SharedBlobStorage | null = null) {
    this.blobDir = join(home, 'blobs', 'sha256');
    this.tmpDir = join(home, 'tmp');
    this.shared = shared;
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

  /**
   * Keeps a received file: in the shared storage first (when there is one), then moved to its
   * content address on this node (dropped if the blob already exists).
   */
  async commit(file: ReceivedFile): Promise<string> {
    if (this.shared !== null && !(await this.shared.has(file.sha256))) {
      await this.shared.put(file.sha256, file.size, () => createReadStream(file.path));
    }
    this.verified.add(file.sha256);
    const dest = this.pathOf(file.sha256);
    await mkdir(join(this.blobDir, file.sha256.slice(0, 2)), { recursive: true });
    if (await pathExists(dest)) {
      await rm(file.path, { force: true });
    } else {
      await rename(file.path, dest);
    }
    return dest;
  }

  /**
   * The path of a blob's bytes on this node, fetching them from the shared storage when they
   * are not cached, and checking their SHA-256 before the path is returned. Throws when the
   * blob exists nowhere, or when its bytes do not match its SHA-256.
   */
  async localPath(sha256: string): Promise<string> {
    const path = this.pathOf(sha256);
    if (this.verified.has(sha256)) return path;
    let pending = this.fetching.get(sha256);
    if (pending === undefined) {
      pending = this.ensureLocal(sha256, path).finally(() => this.fetching.delete(sha256));
      this.fetching.set(sha256, pending);
    }
    return pending;
  }

  private async ensureLocal(sha256: string, path: string): Promise<string> {
    if (await pathExists(path)) {
      // The embedded home's files are the artefacts themselves; a cache copy is checked.
      if (this.shared === null || (await sha256OfFile(path)) === sha256) {
        this.verified.add(sha256);
        return path;
      }
      await rm(path, { force: true });
    }
    if (this.shared === null)
      throw new Error(`the file with SHA-256 ${sha256} could not be found on this node`);
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(join(this.blobDir, sha256.slice(0, 2)), { recursive: true });
    try {
      await copySharedBlob(this.shared, sha256, path, join(this.tmpDir, randomUUID()));
    } catch (err) {
      if (err instanceof BlobNotFoundError) {
        throw new Error(
          `the file with SHA-256 ${sha256} could not be found on this node or in the shared storage`,
          { cause: err },
        );
      }
      throw err;
    }
    this.verified.add(sha256);
    return path;
  }

  /** Deletes a received file that will not be kept. */
  async discard(file: ReceivedFile | { path: string }): Promise<void> {
    await rm(file.path, { force: true });
  }
}
