import { RecordBatchStreamWriter } from 'apache-arrow';
import type { RecordBatch, Schema } from 'apache-arrow';
import { encodeRecordBatchMessage } from './encode-record-batch-message.js';

/** The Arrow IPC end-of-stream marker: continuation `0xFFFFFFFF` then a zero length. */
export const ARROW_EOS = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/**
 * Encodes single Arrow IPC stream messages (a schema, or one record batch) to byte chunks,
 * without buffering a whole stream. It reuses apache-arrow's own stream writer for the
 * message layout and only captures what that writer would have written, so a segment file
 * is `schema message, batch message, …, EOS`: a plain Arrow IPC stream.
 *
 * Body chunks are views of the batch's own buffers (no copy); the caller writes them out
 * before the batch could change.
 *
 * One encoder lives as long as its store (the log writer's, the PostgreSQL writer's) and writes
 * the messages of many streams, so it keeps nothing from one message to the next: apache-arrow's
 * writer records a `FileBlock` per message for a file footer this encoder never writes (one
 * object per batch, kept for ever), and remembers the dictionaries it wrote so it can omit them
 * from later batches of the same stream. Both are emptied after every message; a batch with
 * dictionaries therefore carries them in its own chunks (a replacement, valid in a stream), so
 * it reads right in whichever stream (segment) it lands. The log refuses dictionary columns
 * today (`checkLogBatch`), so that is for callers of this class beyond the log.
 */
export class ArrowMessageEncoder extends RecordBatchStreamWriter {
  #chunks: Uint8Array[] = [];
  #bytes = 0;

  /** The schema message that opens a stream, as chunks plus their total length. */
  encodeSchema(schema: Schema): { chunks: Uint8Array[]; bytes: number } {
    this._writeSchema(schema);
    return this.#take();
  }

  /**
   * One record-batch message, as chunks plus their total length (a multiple of 8): written
   * directly for the layouts the log uses (`encodeRecordBatchMessage`, which says why), by
   * apache-arrow's writer for any other.
   */
  encodeBatch(batch: RecordBatch): { chunks: Uint8Array[]; bytes: number } {
    const direct = encodeRecordBatchMessage(batch);
    if (direct !== null) return direct;
    this._writeRecordBatch(batch);
    return this.#take();
  }

  protected override _write(chunk: ArrayBufferView | ArrayBuffer): this {
    const bytes =
      chunk instanceof Uint8Array
        ? chunk
        : ArrayBuffer.isView(chunk)
          ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
          : new Uint8Array(chunk);
    if (bytes.byteLength > 0) {
      this.#chunks.push(bytes);
      this.#bytes += bytes.byteLength;
    }
    return this;
  }

  #take(): { chunks: Uint8Array[]; bytes: number } {
    this._recordBatchBlocks.length = 0;
    this._dictionaryBlocks.length = 0;
    this._seenDictionaries.clear();
    this._dictionaryDeltaOffsets.clear();
    const out = { chunks: this.#chunks, bytes: this.#bytes };
    this.#chunks = [];
    this.#bytes = 0;
    return out;
  }
}
