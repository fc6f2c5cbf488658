/**
 * Where artefacts (model files, orchestration archives) live when several nodes share them:
 * content-addressed by SHA-256 and written once. Every node keeps a copy on its own disk (see
 * `BlobStore`); this port is where the copies come from. The embedded home has none: its
 * files are the artefacts.
 */
export interface SharedBlobStorage {
  /** Whether a complete blob with this SHA-256 is stored. */
  has(sha256: string): Promise<boolean>;
  /**
   * Stores the bytes `read()` yields under `sha256`, all or nothing; storing a SHA that is
   * already stored (by this or another node) does nothing. The caller has checked the hash.
   */
  put(sha256: string, size: number, read: () => AsyncIterable<Uint8Array>): Promise<void>;
  /** The blob's bytes, in order; throws `BlobNotFoundError` when none is stored. */
  read(sha256: string): AsyncIterable<Uint8Array>;
}

/** No blob with this SHA-256 is stored. */
export class BlobNotFoundError extends Error {
  constructor(readonly sha256: string) {
    super(`no stored blob has SHA-256 ${sha256}`);
    this.name = 'BlobNotFoundError';
  }
}
