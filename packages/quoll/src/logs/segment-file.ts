import { open, readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Message, MessageHeader, RecordBatchReader, tableFromIPC } from 'apache-arrow';
import type { RecordBatch } from 'apache-arrow';
import { SegmentBatchIndex } from './segment-batch-index.js';

/** The segment file of `(pipelineId, seq)` under the log root: `<root>/<pipelineId>/<seq>.arrows`. */
export function segmentPath(root: string, pipelineId: number, seq: number): string {
  return join(root, String(pipelineId), `${seq}.arrows`);
}

/** The batch-index sidecar of a sealed segment: `<root>/<pipelineId>/<seq>.idx`. */
export function sidecarPath(root: string, pipelineId: number, seq: number): string {
  return join(root, String(pipelineId), `${seq}.idx`);
}

/**
 * The `time` values of a batch (epoch ms as Int64), read straight from its buffer. Arrow
 * slices a fixed-width buffer when it slices the data, so index 0 is the batch's first row.
 */
export function timeValues(batch: RecordBatch): BigInt64Array {
  const data = batch.getChild('time')?.data[0];
  if (data === undefined) throw new Error('log batch has no time column');
  return (data.values as BigInt64Array).subarray(0, data.length);
}

/** `time` of the first and last row of a non-empty batch. */
export function timeBounds(batch: RecordBatch): { first: number; last: number } {
  const t = timeValues(batch);
  return { first: Number(t[0]), last: Number(t[t.length - 1]) };
}

/** What a scan of a segment file found. */
export interface SegmentScan {
  /** Every complete record batch, in file order. */
  index: SegmentBatchIndex;
  /** Bytes of the intact prefix (schema + complete batches, + EOS when present). */
  validBytes: number;
  /** Whether the intact prefix ends with the end-of-stream marker. */
  hasEos: boolean;
  /** Size of the file as found. */
  fileBytes: number;
}

/**
 * Reads a segment file and finds how much of it is intact: the schema message and every
 * complete record-batch message, stopping at the first torn or garbled one (what a crash in
 * the middle of a write leaves). `null` when not even the schema message is complete.
 */
export async function scanSegment(path: string): Promise<SegmentScan | null> {
  const bytes = await readFile(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  let schemaBytes = -1;
  let hasEos = false;
  const messages: { offset: number; length: number; rows: number }[] = [];
  while (pos + 8 <= bytes.byteLength) {
    // Every message we write starts with the continuation marker; anything else is a torn tail.
    if (view.getInt32(pos, true) !== -1) break;
    const metaLength = view.getInt32(pos + 4, true);
    if (metaLength === 0) {
      hasEos = true;
      pos += 8;
      break;
    }
    if (metaLength < 0 || metaLength % 8 !== 0 || pos + 8 + metaLength > bytes.byteLength) break;
    let message: Message;
    try {
      message = Message.decode(bytes.subarray(pos + 8, pos + 8 + metaLength));
    } catch {
      break;
    }
    const end = pos + 8 + metaLength + Number(message.bodyLength);
    if (end > bytes.byteLength) break;
    if (schemaBytes < 0) {
      if (message.headerType !== MessageHeader.Schema) break;
      schemaBytes = end;
    } else if (message.isRecordBatch()) {
      messages.push({ offset: pos, length: end - pos, rows: Number(message.header().length) });
    } else {
      break;
    }
    pos = end;
  }
  if (schemaBytes < 0) return null;
  const index = new SegmentBatchIndex(schemaBytes);
  const batchesEnd =
    messages.length === 0 ? schemaBytes : (messages.at(-1)?.offset ?? 0) + (messages.at(-1)?.length ?? 0);
  // Decode the intact prefix to learn each batch's first and last time; a body that does not
  // decode ends the intact part just like a torn header would.
  try {
    const reader = RecordBatchReader.from(bytes.subarray(0, batchesEnd));
    let i = 0;
    for (const batch of reader) {
      const m = messages[i];
      if (m === undefined) break;
      const { first, last } = timeBounds(batch);
      index.push(m.offset, m.length, m.rows, first, last);
      i++;
    }
  } catch {
    // Keep the batches decoded before the bad one.
  }
  const complete = index.count === messages.length;
  return {
    index,
    validBytes: complete && hasEos ? pos : index.endOffset,
    hasEos: complete && hasEos,
    fileBytes: bytes.byteLength,
  };
}

/**
 * Reads batches `from..to` (inclusive) of a segment in one positioned read, prefixed by the
 * segment's schema message so apache-arrow decodes them as a stream (zero-copy views).
 */
export async function readBatchRange(
  path: string,
  index: SegmentBatchIndex,
  schemaMessage: Uint8Array,
  from: number,
  to: number,
): Promise<RecordBatch[]> {
  const start = index.offset(from);
  const length = index.offset(to) + index.length(to) - start;
  // A fresh Uint8Array is 8-byte aligned, so Arrow can view the body buffers in place.
  const buf = new Uint8Array(schemaMessage.byteLength + length);
  buf.set(schemaMessage, 0);
  const fh = await open(path, 'r');
  try {
    await readFully(fh, buf, schemaMessage.byteLength, length, start);
  } finally {
    await fh.close();
  }
  return tableFromIPC(buf).batches;
}

/** Reads the schema message at the start of a segment file. */
export async function readSchemaMessage(path: string, schemaBytes: number): Promise<Uint8Array> {
  const buf = new Uint8Array(schemaBytes);
  const fh = await open(path, 'r');
  try {
    await readFully(fh, buf, 0, schemaBytes, 0);
  } finally {
    await fh.close();
  }
  return buf;
}

async function readFully(
  fh: FileHandle,
  buf: Uint8Array,
  at: number,
  length: number,
  position: number,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, at + done, length - done, position + done);
    if (bytesRead === 0)
      throw new Error(`segment file is shorter than its index (read ${done} of ${length} bytes)`);
    done += bytesRead;
  }
}
