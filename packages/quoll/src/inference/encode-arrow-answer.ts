import { Message } from 'apache-arrow';
import type { RecordBatch, Schema, Table } from 'apache-arrow';
import { encodeRecordBatchMessage } from '../logs/index.js';
import { isFrozenSchema } from './freeze-schema.js';

/** `ARROW1` and 2 bytes of padding: what an Arrow IPC file opens with. */
const FILE_HEAD = new Uint8Array([0x41, 0x52, 0x52, 0x4f, 0x57, 0x31, 0, 0]);
/** `ARROW1`: what an Arrow IPC file ends with, after the footer and its length. */
const MAGIC = FILE_HEAD.subarray(0, 6);
/** The end-of-stream marker: continuation `0xFFFFFFFF` then a zero length. */
const EOS = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/** A schema's stream message, and where its `Schema` table sits in the message's flatbuffer. */
interface EncodedSchema {
  /** Continuation marker, length, flatbuffer (padded to 8): apache-arrow's bytes. */
  message: Uint8Array;
  /** The flatbuffer alone (a view of {@link message}). */
  flatbuffer: Uint8Array;
  /** Offset of the `Schema` table in {@link flatbuffer}. */
  schemaTable: number;
}

/**
 * Encoded once per schema object: results of one layout share theirs (`InferenceResult`). Only
 * schemas that `freezeSchema` made read-only are kept, as only they cannot change afterwards.
 */
const encodedSchemas = new WeakMap<Schema, EncodedSchema | null>();

/**
 * An inference answer's Arrow IPC file (`file`) or stream, written directly in one buffer: the
 * schema message (stream) or footer schema (file) from an encoding cached per frozen schema object,
 * each record batch's message by `encodeRecordBatchMessage` (apache-arrow's body byte for byte),
 * and the file's footer laid out by hand. It returns `null` when a batch has a layout the direct
 * encoder does not know (a sliced column, a dictionary …), for the caller to use apache-arrow.
 *
 * Why: apache-arrow's writer (`tableToIPC`) builds the schema's and footer's flatbuffers per
 * request, visits every column through generic code and joins its chunks into a fresh buffer:
 * about 14 % of the HTTP thread's CPU on Arrow batch 1000 answers. The bytes read the same with
 * any reader: the stream is apache-arrow's but for the batch metadata's field order, the file
 * apache-arrow's layout (no schema message, the end marker before the footer).
 *
 * The answer is a copy: the table's buffers may go back to a model worker once it is written.
 */
export function encodeArrowAnswer(table: Table, file: boolean): Uint8Array | null {
  const schema = table.schema;
  const encoded = encodedSchema(schema);
  if (encoded === null) return null;
  const batches = table.batches as readonly RecordBatch[];
  const messages: { chunks: Uint8Array[]; bytes: number }[] = [];
  for (const batch of batches) {
    if (batch.data.children.length !== schema.fields.length) return null;
    const message = encodeRecordBatchMessage(batch);
    if (message === null) return null;
    messages.push(message);
  }
  let bytes = (file ? FILE_HEAD.byteLength : encoded.message.byteLength) + EOS.byteLength;
  for (const message of messages) bytes += message.bytes;
  // Footer: root offset, vtable, table, dictionaries (none), blocks, then the schema flatbuffer.
  const blocksAt = 48;
  const schemaAt = blocksAt + 24 * messages.length;
  const footerLength = schemaAt + encoded.flatbuffer.byteLength;
  if (file) bytes += footerLength + 4 + MAGIC.byteLength;

  const out = new Uint8Array(bytes);
  let at = 0;
  out.set(file ? FILE_HEAD : encoded.message, 0);
  at += file ? FILE_HEAD.byteLength : encoded.message.byteLength;
  const blocks: number[] = [];
  for (const message of messages) {
    // Block: offset, metadata length (prefix included), body length.
    const header = message.chunks[0]!.byteLength;
    blocks.push(at, header, message.bytes - header);
    for (const chunk of message.chunks) {
      out.set(chunk, at);
      at += chunk.byteLength;
    }
  }
  out.set(EOS, at);
  at += EOS.byteLength;
  if (!file) return out;

  const footerAt = at;
  const v = new DataView(out.buffer, footerAt, footerLength + 4);
  //  0  root offset → Footer table at 16
  //  4  vtable (12 bytes): version, schema, dictionaries, recordBatches
  // 16  table: soffset, schema (20), dictionaries (24), recordBatches (28), version (32, int16)
  // 36  dictionaries vector: count 0;  44 recordBatches vector: count, Blocks from 48 (8-aligned)
  v.setUint32(0, 16, true);
  v.setUint16(4, 12, true);
  v.setUint16(6, 20, true);
  v.setUint16(8, 16, true); // version
  v.setUint16(10, 4, true); // schema
  v.setUint16(12, 8, true); // dictionaries
  v.setUint16(14, 12, true); // recordBatches
  v.setInt32(16, 16 - 4, true);
  v.setUint32(20, schemaAt + encoded.schemaTable - 20, true);
  v.setUint32(24, 36 - 24, true);
  v.setUint32(28, 44 - 28, true);
  v.setInt16(32, 4, true); // MetadataVersion.V5
  v.setUint32(36, 0, true);
  v.setUint32(44, messages.length, true);
  for (let i = 0, p = blocksAt; i < messages.length; i++, p += 24) {
    setInt64(v, p, blocks[3 * i]!);
    v.setInt32(p + 8, blocks[3 * i + 1]!, true);
    setInt64(v, p + 16, blocks[3 * i + 2]!);
  }
  // The schema's flatbuffer as it is: its offsets are relative, and it starts 8-aligned here.
  out.set(encoded.flatbuffer, footerAt + schemaAt);
  v.setInt32(footerLength, footerLength, true);
  out.set(MAGIC, footerAt + footerLength + 4);
  return out;
}

/**
 * The schema's encoding; `null` when it holds dictionaries (left to apache-arrow). A frozen
 * schema's (every result layout's) is cached; any other is encoded each time, as its fields or
 * metadata could change between answers (review of 5 December, finding 1).
 */
function encodedSchema(schema: Schema): EncodedSchema | null {
  if (!isFrozenSchema(schema)) return schema.dictionaries.size > 0 ? null : encodeSchema(schema);
  let encoded = encodedSchemas.get(schema);
  if (encoded === undefined) {
    encoded = schema.dictionaries.size > 0 ? null : encodeSchema(schema);
    encodedSchemas.set(schema, encoded);
  }
  return encoded;
}

function encodeSchema(schema: Schema): EncodedSchema | null {
  const body = Message.encode(Message.from(schema));
  const padded = (body.byteLength + 7) & ~7;
  const message = new Uint8Array(8 + padded);
  const v = new DataView(message.buffer);
  v.setInt32(0, -1, true);
  v.setInt32(4, padded, true);
  message.set(body, 8);
  const flatbuffer = message.subarray(8);
  // Root → Message table → its vtable → the `header` field (index 2) → the Schema table.
  const fb = new DataView(flatbuffer.buffer, flatbuffer.byteOffset, flatbuffer.byteLength);
  const table = fb.getUint32(0, true);
  const vtable = table - fb.getInt32(table, true);
  if (fb.getUint16(vtable, true) <= 4 + 2 * 2) return null;
  const field = fb.getUint16(vtable + 4 + 2 * 2, true);
  if (field === 0) return null;
  return { message, flatbuffer, schemaTable: table + field + fb.getUint32(table + field, true) };
}

/** A non-negative integer below 2^53 as a little-endian int64 (without a BigInt). */
function setInt64(v: DataView, at: number, n: number): void {
  v.setUint32(at, n % 0x1_0000_0000, true);
  v.setUint32(at + 4, Math.floor(n / 0x1_0000_0000), true);
}
