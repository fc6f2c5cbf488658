import { DataType } from 'apache-arrow';
import type { Data, RecordBatch } from 'apache-arrow';

/** Zero bytes that pad a body buffer to 8 (read-only: shared by every message). */
const PADDING = new Uint8Array(8);

/** One field node (rows, nulls) and the body buffers of a batch, in the order Arrow IPC lists them. */
interface Layout {
  /** 2 numbers per field node: length, null count. */
  nodes: number[];
  /** Body buffers, each padded to 8 bytes in the body. */
  buffers: Uint8Array[];
}

/**
 * The Arrow IPC stream message of one record batch (continuation marker, metadata length,
 * `Message` flatbuffer, body), written directly for the layouts of the inference log's batches
 * and of inference results: columns of ints, floats, timestamps, dates, booleans, strings,
 * binaries, lists, fixed-size lists and structs of those, every `Data` unsliced (offset 0,
 * offsets from 0). It
 * returns `null` for anything else (a dictionary, a union, a sliced column, batch metadata …),
 * for the caller to encode with apache-arrow's writer.
 *
 * Why: the log writer thread encodes a batch or two per hand-off, 20 times a second, on the
 * core that serves requests; apache-arrow's generic path (a visitor per column, metadata
 * objects, a flatbuffers builder, dictionary collection) runs there as cold, megamorphic
 * code, about a quarter of the thread's time per hand-off. The body is byte for byte what
 * apache-arrow writes (the same buffers, field nodes and 8-byte padding); the flatbuffer is
 * laid out front to back instead of back to front, which every reader accepts (offsets and
 * alignments are those flatbuffers requires). It also writes every small Arrow answer's
 * batches on the HTTP thread (`encodeArrowAnswer` in `inference/`, in place of `tableToIPC`).
 *
 * Chunks are views of the batch's own buffers (no copy), plus one new header buffer.
 */
export function encodeRecordBatchMessage(batch: RecordBatch): { chunks: Uint8Array[]; bytes: number } | null {
  const metadata = (batch as { metadata?: Map<string, string> }).metadata;
  if (metadata !== undefined && metadata.size > 0) return null;
  const layout: Layout = { nodes: [], buffers: [] };
  const columns = batch.data.children;
  const fields = batch.schema.fields;
  if (columns.length !== fields.length) return null;
  for (let i = 0; i < columns.length; i++) {
    if (!addData(layout, columns[i]!)) return null;
  }
  const { nodes, buffers } = layout;
  const nodeCount = nodes.length / 2;
  const bufferCount = buffers.length;
  let bodyLength = 0;
  for (let i = 0; i < bufferCount; i++) bodyLength += (buffers[i]!.byteLength + 7) & ~7;

  // The flatbuffer (offsets from its start), laid out front to back:
  //   0  root offset → Message table at 16
  //   4  Message vtable (12 bytes): fields version, header_type, header, bodyLength
  //  16  Message table: vtable soffset, header offset, bodyLength (int64 at 24), version (32), header_type (34)
  //  40  RecordBatch vtable (10 bytes + 2 padding): fields length, nodes, buffers
  //  56  RecordBatch table: vtable soffset, nodes offset (60), length (int64 at 64), buffers offset (72)
  //  76  nodes vector: count, then 16-byte FieldNode structs from 80
  //   …  4 bytes padding, buffers vector: count, then 16-byte Buffer structs (8-aligned)
  const nodesAt = 76;
  const nodesEnd = nodesAt + 4 + 16 * nodeCount;
  const buffersAt = nodesEnd + 4;
  const fbSize = buffersAt + 4 + 16 * bufferCount;
  const header = new Uint8Array(8 + fbSize);
  const v = new DataView(header.buffer);
  // Stream prefix: continuation marker, then the flatbuffer's length (a multiple of 8 already).
  v.setInt32(0, -1, true);
  v.setInt32(4, fbSize, true);
  const o = 8;
  v.setUint32(o + 0, 16, true);
  // Message vtable.
  v.setUint16(o + 4, 12, true);
  v.setUint16(o + 6, 20, true);
  v.setUint16(o + 8, 16, true); // version
  v.setUint16(o + 10, 18, true); // header_type
  v.setUint16(o + 12, 4, true); // header
  v.setUint16(o + 14, 8, true); // bodyLength
  // Message table.
  v.setInt32(o + 16, 16 - 4, true);
  v.setUint32(o + 20, 56 - 20, true);
  setInt64(v, o + 24, bodyLength);
  v.setInt16(o + 32, 4, true); // MetadataVersion.V5
  v.setUint8(o + 34, 3); // MessageHeader.RecordBatch
  // RecordBatch vtable.
  v.setUint16(o + 40, 10, true);
  v.setUint16(o + 42, 20, true);
  v.setUint16(o + 44, 8, true); // length
  v.setUint16(o + 46, 4, true); // nodes
  v.setUint16(o + 48, 16, true); // buffers
  // RecordBatch table.
  v.setInt32(o + 56, 56 - 40, true);
  v.setUint32(o + 60, nodesAt - 60, true);
  setInt64(v, o + 64, batch.numRows);
  v.setUint32(o + 72, buffersAt - 72, true);
  // Field nodes.
  v.setUint32(o + nodesAt, nodeCount, true);
  for (let i = 0, at = o + nodesAt + 4; i < nodes.length; i++, at += 8) setInt64(v, at, nodes[i]!);
  // Buffers: offset and padded length in the body.
  v.setUint32(o + buffersAt, bufferCount, true);
  const chunks: Uint8Array[] = [header];
  for (let i = 0, at = o + buffersAt + 4, offset = 0; i < bufferCount; i++, at += 16) {
    const buffer = buffers[i]!;
    const padded = (buffer.byteLength + 7) & ~7;
    setInt64(v, at, offset);
    setInt64(v, at + 8, padded);
    offset += padded;
    if (buffer.byteLength > 0) chunks.push(buffer);
    if (padded > buffer.byteLength) chunks.push(PADDING.subarray(0, padded - buffer.byteLength));
  }
  return { chunks, bytes: header.byteLength + bodyLength };
}

/** A non-negative integer below 2^53 as a little-endian int64 (without a BigInt). */
function setInt64(v: DataView, at: number, n: number): void {
  v.setUint32(at, n % 0x1_0000_0000, true);
  v.setUint32(at + 4, Math.floor(n / 0x1_0000_0000), true);
}

/** Bytes of `view` as a Uint8Array over the same memory. */
function bytesOf(view: ArrayBufferView): Uint8Array {
  return view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/**
 * Adds a column's field nodes and buffers as apache-arrow's `VectorAssembler` does for an
 * unsliced `Data`; `false` when the column is not one of the layouts handled here.
 */
function addData(layout: Layout, data: Data): boolean {
  if (data.offset !== 0) return false;
  const type = data.type;
  const length = data.length;
  const nullCount = data.nullCount;
  if (nullCount < 0) return false;
  // Validity bitmap first (an empty placeholder when there are no nulls).
  if (nullCount === 0) layout.buffers.push(PADDING.subarray(0, 0));
  else {
    const bitmap = data.nullBitmap;
    if (!(bitmap instanceof Uint8Array) || bitmap.byteLength < (length + 7) >> 3) return false;
    layout.buffers.push(bitmap);
  }
  layout.nodes.push(length, nullCount);
  if (DataType.isInt(type) || DataType.isFloat(type) || DataType.isTimestamp(type) || DataType.isDate(type)) {
    const values = data.values as unknown;
    if (!ArrayBuffer.isView(values)) return false;
    const typed = values as unknown as { length: number; subarray(a: number, b: number): ArrayBufferView };
    const count = length * data.stride;
    if (typed.length < count) return false;
    layout.buffers.push(bytesOf(typed.subarray(0, count)));
    return true;
  }
  if (DataType.isBool(type)) {
    const values = data.values as unknown;
    if (nullCount >= length) {
      layout.buffers.push(new Uint8Array((length + 7) >> 3));
      return true;
    }
    if (!(values instanceof Uint8Array) || values.byteLength < (length + 7) >> 3) return false;
    layout.buffers.push(values);
    return true;
  }
  if (DataType.isUtf8(type) || DataType.isBinary(type)) {
    const offsets = data.valueOffsets as unknown;
    const values = data.values as unknown;
    if (!(offsets instanceof Int32Array) || !(values instanceof Uint8Array)) return false;
    if (offsets.length < length + 1 || offsets[0] !== 0) return false;
    layout.buffers.push(bytesOf(offsets.subarray(0, length + 1)));
    layout.buffers.push(values.subarray(0, Math.min(offsets[length]!, values.byteLength)));
    return true;
  }
  if (DataType.isList(type)) {
    const offsets = data.valueOffsets as unknown;
    const child = data.children[0];
    if (!(offsets instanceof Int32Array) || child === undefined) return false;
    // apache-arrow slices the child to the offsets' range; taken as it is only when they span it all.
    if (offsets.length < length + 1 || offsets[0] !== 0 || offsets[length] !== child.length) return false;
    layout.buffers.push(bytesOf(offsets.subarray(0, length + 1)));
    return addData(layout, child);
  }
  if (DataType.isFixedSizeList(type)) {
    const child = data.children[0];
    return child !== undefined && addData(layout, child);
  }
  if (DataType.isStruct(type)) {
    const children = type.children as unknown[];
    if (data.children.length !== children.length) return false;
    for (const child of data.children) if (!addData(layout, child)) return false;
    return true;
  }
  return false;
}
