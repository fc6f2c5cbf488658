import { closeSync, fdatasyncSync, mkdirSync, openSync, writeSync, writevSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Schema } from 'apache-arrow';
import { ARROW_EOS } from './arrow-message-encoder.js';
import type { LogSegmentUpdate } from './log-segment-index.js';
import { SegmentBatchIndex } from './segment-batch-index.js';
import type { SegmentView } from './segment-read-cache.js';

interface PendingBatch {
  chunks: Uint8Array[];
  bytes: number;
  rows: number;
  firstTime: number;
  lastTime: number;
}

/**
 * The segment file a pipeline is appending to. Encoded batches are staged in memory
 * ({@link OpenSegment.stage}), written together in one positioned write
 * ({@link OpenSegment.writeStaged}), and only then entered in the batch index, so a reader
 * never sees a batch that is not fully in the file.
 *
 * Only the log writer's own thread uses it, so its file calls are synchronous: that thread
 * exists to wait for the disk, and an asynchronous call would hand each write to libuv's
 * thread pool and back, two more thread wake-ups per write (on one core, each costs more CPU
 * than a small write itself). The methods stay promise-returning for the writer's loop.
 */
export class OpenSegment {
  readonly pipelineId: number;
  readonly seq: number;
  readonly schemaId: string;
  readonly schema: Schema;
  readonly path: string;
  readonly index: SegmentBatchIndex;
  readonly schemaMessage: Uint8Array;
  readonly #fd: number;
  /** Whether the descriptor was closed (its number may then belong to another file). */
  #closed = false;
  #pending: PendingBatch[] = [];
  #pendingRows = 0;
  #pendingBytes = 0;
  /** Whether bytes were written since the last `sync`. */
  #dirty: boolean;

  private constructor(
    fields: Pick<OpenSegment, 'pipelineId' | 'seq' | 'schemaId' | 'schema' | 'path' | 'schemaMessage'>,
    fd: number,
  ) {
    this.pipelineId = fields.pipelineId;
    this.seq = fields.seq;
    this.schemaId = fields.schemaId;
    this.schema = fields.schema;
    this.path = fields.path;
    this.schemaMessage = fields.schemaMessage;
    this.index = new SegmentBatchIndex(fields.schemaMessage.byteLength);
    this.#fd = fd;
    this.#dirty = true;
  }

  /** Creates the file (replacing any leftover of the same name) and writes the schema message. */
  static async create(
    fields: Pick<OpenSegment, 'pipelineId' | 'seq' | 'schemaId' | 'schema' | 'path'>,
    schemaChunks: Uint8Array[],
  ): Promise<OpenSegment> {
    mkdirSync(dirname(fields.path), { recursive: true });
    const schemaMessage = Buffer.concat(schemaChunks);
    const fd = openSync(fields.path, 'w');
    try {
      writeFullySync(fd, schemaMessage, 0);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return Promise.resolve(new OpenSegment({ ...fields, schemaMessage: new Uint8Array(schemaMessage) }, fd));
  }

  /** Batches staged and not yet written. */
  get stagedBatches(): number {
    return this.#pending.length;
  }

  /** Rows written plus rows staged. */
  get plannedRows(): number {
    return this.index.rows + this.#pendingRows;
  }

  /** File size once the staged batches are written. */
  get plannedBytes(): number {
    return this.index.endOffset + this.#pendingBytes;
  }

  /** Whether bytes were written since the last {@link sync}. */
  get dirty(): boolean {
    return this.#dirty;
  }

  /** What a reader needs; the index keeps growing as the writer appends. */
  get view(): SegmentView {
    return { path: this.path, index: this.index, schemaMessage: this.schemaMessage };
  }

  /** Stages one encoded batch message. */
  stage(chunks: Uint8Array[], bytes: number, rows: number, firstTime: number, lastTime: number): void {
    this.#pending.push({ chunks, bytes, rows, firstTime, lastTime });
    this.#pendingRows += rows;
    this.#pendingBytes += bytes;
  }

  /** Writes every staged batch in one write, then makes them visible in the index. */
  writeStaged(): Promise<void> {
    if (this.#pending.length === 0) return Promise.resolve();
    const pending = this.#pending;
    const chunks: Uint8Array[] = [];
    for (const p of pending) for (const c of p.chunks) chunks.push(c);
    let offset = this.index.endOffset;
    // Gathered write straight from the batches' own buffers: no copy into one big buffer.
    writevFully(this.#fd, chunks, this.#pendingBytes, offset);
    this.#pending = [];
    this.#pendingRows = 0;
    this.#pendingBytes = 0;
    for (const p of pending) {
      this.index.push(offset, p.bytes, p.rows, p.firstTime, p.lastTime);
      offset += p.bytes;
    }
    this.#dirty = true;
    return Promise.resolve();
  }

  /** Forces written bytes to disk. */
  sync(): Promise<void> {
    fdatasyncSync(this.#fd);
    this.#dirty = false;
    return Promise.resolve();
  }

  /** Counters for the index row. */
  update(sealed: boolean): LogSegmentUpdate {
    const n = this.index.count;
    return {
      pipelineId: this.pipelineId,
      seq: this.seq,
      rows: this.index.rows,
      bytes: this.index.endOffset + (sealed ? ARROW_EOS.byteLength : 0),
      minTime: n === 0 ? null : this.index.firstTime(0),
      maxTime: n === 0 ? null : this.index.lastTime(n - 1),
      sealed,
    };
  }

  /**
   * Completes the file: writes staged batches and the end-of-stream marker, syncs, closes and
   * saves the batch-index sidecar. The caller then marks the index row sealed.
   */
  async seal(sidecar: string): Promise<LogSegmentUpdate> {
    await this.writeStaged();
    writeFullySync(this.#fd, ARROW_EOS, this.index.endOffset);
    await this.sync();
    this.#closed = true;
    closeSync(this.#fd);
    await this.index.save(sidecar);
    return this.update(true);
  }

  /** Closes the file without sealing (after a failure). */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        closeSync(this.#fd);
      } catch {
        // Closing failed (e.g. EIO): the descriptor is released all the same.
      }
    }
    return Promise.resolve();
  }
}

/** Most buffers one `writev` call takes (the OS limit, IOV_MAX, is 1024 on Linux). */
const IOV_MAX = 1024;

/** Writes `chunks` (`bytes` in total) at `position` with gathered writes, finishing any short write plainly. */
function writevFully(fd: number, chunks: Uint8Array[], bytes: number, position: number): void {
  let done = 0;
  for (let i = 0; i < chunks.length; i += IOV_MAX) {
    const group = chunks.slice(i, i + IOV_MAX);
    const size = group.reduce((sum, c) => sum + c.byteLength, 0);
    const bytesWritten = writevSync(fd, group, position + done);
    if (bytesWritten < size) {
      // Rare (a full disk, a signal): write what is left of this group byte-exactly.
      const rest = Buffer.concat(group, size).subarray(bytesWritten);
      writeFullySync(fd, rest, position + done + bytesWritten);
    }
    done += size;
  }
  if (done !== bytes) throw new Error(`Segment write planned ${bytes} bytes but the chunks hold ${done}.`);
}

/** Writes all of `buf` at `position`, looping over short writes (blocking the calling thread). */
function writeFullySync(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) done += writeSync(fd, buf, done, buf.byteLength - done, position + done);
}

/** Writes all of `buf` at `position`, looping over short writes. */
export async function writeFully(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesWritten } = await fh.write(buf, done, buf.byteLength - done, position + done);
    done += bytesWritten;
  }
}
