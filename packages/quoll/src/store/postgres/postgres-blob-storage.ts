import type { SharedBlobStorage } from '../../blobs/index.js';
import { BlobNotFoundError } from '../../blobs/index.js';
import type { PostgresDatabase } from './postgres-database.js';

/** Bytes per stored chunk: big enough for few rows, small enough to stream a 2 GiB model. */
export const BLOB_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * {@link SharedBlobStorage} in PostgreSQL (migration 0007): `blobs` (one row per SHA-256, written
 * in the same transaction as its chunks, so a row means the blob is complete) and
 * `blob_chunks` (the bytes in order, 4 MiB each).
 */
export class PostgresBlobStorage implements SharedBlobStorage {
  constructor(private readonly db: PostgresDatabase) {}

  async has(sha256: string): Promise<boolean> {
    return (await this.db.one('SELECT 1 AS one FROM blobs WHERE sha = $1', [sha256])) !== null;
  }

  async put(sha256: string, size: number, read: () => AsyncIterable<Uint8Array>): Promise<void> {
    await this.db.transaction(async (sql) => {
      // A second node storing the same content waits here for the first to commit, then does nothing.
      const fresh = await sql.one(
        `INSERT INTO blobs (sha, size, chunk_bytes, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (sha) DO NOTHING RETURNING sha`,
        [sha256, size, BLOB_CHUNK_BYTES, new Date().toISOString()],
      );
      if (fresh === null) return;
      let idx = 0;
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let total = 0;
      const flush = async (all: boolean): Promise<void> => {
        while (pendingBytes >= BLOB_CHUNK_BYTES || (all && pendingBytes > 0)) {
          const joined = Buffer.concat(pending, pendingBytes);
          const chunk = joined.subarray(0, Math.min(BLOB_CHUNK_BYTES, joined.length));
          await sql.run('INSERT INTO blob_chunks (sha, idx, data) VALUES ($1, $2, $3)', [
            sha256,
            idx++,
            chunk,
          ]);
          const rest = joined.subarray(chunk.length);
          pending = rest.length > 0 ? [rest] : [];
          pendingBytes = rest.length;
        }
      };
      for await (const piece of read()) {
        pending.push(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
        pendingBytes += piece.byteLength;
        total += piece.byteLength;
        await flush(false);
      }
      await flush(true);
      if (total !== size) throw new Error(`blob ${sha256}: read ${total} bytes, expected ${size}`);
    });
  }

  async *read(sha256: string): AsyncIterable<Uint8Array> {
    const meta = await this.db.one<{ chunks: number }>(
      'SELECT (SELECT count(*) FROM blob_chunks c WHERE c.sha = b.sha) AS chunks FROM blobs b WHERE b.sha = $1',
      [sha256],
    );
    if (meta === null) throw new BlobNotFoundError(sha256);
    // One chunk per round-trip: memory stays at one chunk whatever the blob's size.
    for (let idx = 0; idx < meta.chunks; idx++) {
      const row = await this.db.one<{ data: Buffer }>(
        'SELECT data FROM blob_chunks WHERE sha = $1 AND idx = $2',
        [sha256, idx],
      );
      if (row === null) throw new Error(`blob ${sha256} lost chunk ${idx}`);
      yield row.data;
    }
  }
}
