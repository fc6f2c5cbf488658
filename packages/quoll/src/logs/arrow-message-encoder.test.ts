import { describe, expect, it } from 'vitest';
import type { Vector } from 'apache-arrow';
import {
  Message,
  RecordBatch,
  RecordBatchStreamWriter,
  Table,
  tableFromArrays,
  tableFromIPC,
  vectorFromArray,
  Bool,
  Dictionary,
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int32,
  Int64,
  List,
  Struct,
  TimestampMillisecond,
  Utf8,
  makeData,
  Schema,
} from 'apache-arrow';
import { ManualClock } from '../clock/index.js';
import { checkArrowIpc } from '../inference/index.js';
import { InferenceResult } from '../inference/inference-result.js';
import { recordsLogCases } from '../store/conformance/records-log-cases.js';
import { ARROW_EOS, ArrowMessageEncoder } from './arrow-message-encoder.js';
import { coalesceLogBatches } from './coalesce-log-batches.js';
import { encodeRecordBatchMessage } from './encode-record-batch-message.js';
import { LogBatchUnpacker } from './log-batch-transfer.js';
import { clampLogTime } from './log-batch-checks.js';
import { LogHandOff } from './log-hand-off.js';
import type { LogItemsMessage } from './log-hand-off.js';

/** A batch of one table built from `columns` (each a vector of `n` rows). */
function batchFromColumns(columns: Record<string, Vector>): RecordBatch {
  const table = new Table(columns);
  expect(table.batches).toHaveLength(1);
  return table.batches[0]!;
}

/** apache-arrow's own message of `batch`: its stream minus the schema message and end marker. */
function arrowMessage(batch: RecordBatch): Uint8Array {
  const stream = RecordBatchStreamWriter.writeAll([batch]).toUint8Array(true);
  const schemaLength = 8 + new DataView(stream.buffer, stream.byteOffset).getInt32(4, true);
  return stream.subarray(schemaLength, stream.byteLength - ARROW_EOS.byteLength);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

/** The metadata (flatbuffer) and body of one stream message. */
function split(message: Uint8Array): { metadata: Uint8Array; body: Uint8Array } {
  const metaLength = new DataView(message.buffer, message.byteOffset).getInt32(4, true);
  return { metadata: message.subarray(8, 8 + metaLength), body: message.subarray(8 + metaLength) };
}

function described(metadata: Uint8Array): unknown {
  const m = Message.decode(metadata);
  const header = m.header() as { length: number; nodes: unknown[]; buffers: unknown[] };
  return {
    version: m.version,
    headerType: m.headerType,
    bodyLength: Number(m.bodyLength),
    length: Number(header.length),
    nodes: header.nodes.map((n) => ({ ...(n as object) })),
    buffers: header.buffers.map((b) => ({ ...(b as object) })),
  };
}

const n = 13;
const layouts: Record<string, () => RecordBatch> = {
  'ints, floats and timestamps': () =>
    batchFromColumns({
      a: vectorFromArray(
        Array.from({ length: n }, (_, i) => i * 3),
        new Int32(),
      ),
      b: vectorFromArray(
        Array.from({ length: n }, (_, i) => i / 7),
        new Float64(),
      ),
      c: vectorFromArray(
        Array.from({ length: n }, (_, i) => BigInt(i) - 5n),
        new Int64(),
      ),
      time: vectorFromArray(
        Array.from({ length: n }, (_, i) => 1_764_950_400_000 + i),
        new TimestampMillisecond(),
      ),
    }),
  'nulls, booleans and strings': () =>
    batchFromColumns({
      a: vectorFromArray(
        Array.from({ length: n }, (_, i) => (i % 3 === 0 ? null : i)),
        new Int32(),
      ),
      flag: vectorFromArray(
        Array.from({ length: n }, (_, i) => (i % 4 === 1 ? null : i % 2 === 0)),
        new Bool(),
      ),
      s: vectorFromArray(
        Array.from({ length: n }, (_, i) => (i % 5 === 2 ? null : `row ${i} ✓`)),
        new Utf8(),
      ),
      empty: vectorFromArray(
        Array.from({ length: n }, () => ''),
        new Utf8(),
      ),
    }),
  'lists, fixed-size lists and structs': () =>
    batchFromColumns({
      'in.tensor': vectorFromArray(
        Array.from({ length: n }, (_, i) => Array.from({ length: 18 }, (_, j) => i + j / 10)),
        new FixedSizeList(18, new Field('item', new Float32(), true)),
      ),
      'out.variable': vectorFromArray(
        Array.from({ length: n }, (_, i) => (i === 4 ? null : Array.from({ length: i % 3 }, (_, j) => j))),
        new List(new Field('item', new Float64(), true)),
      ),
      check_failures: vectorFromArray(
        Array.from({ length: n }, (_, i) => (i % 2 === 0 ? [] : [{ code: `c${i}`, at: i }])),
        new List(
          new Field(
            'item',
            new Struct([new Field('code', new Utf8(), true), new Field('at', new Int32(), true)]),
            true,
          ),
        ),
      ),
    }),
  'every value null': () =>
    batchFromColumns({
      flag: vectorFromArray(
        Array.from({ length: n }, () => null),
        new Bool(),
      ),
      a: vectorFromArray(
        Array.from({ length: n }, () => null),
        new Float32(),
      ),
    }),
};

describe('ArrowMessageEncoder.encodeBatch', () => {
  for (const [name, make] of Object.entries(layouts)) {
    it(`writes ${name} directly, with apache-arrow's body and metadata, readable back`, () => {
      const batch = make();
      const direct = encodeRecordBatchMessage(batch);
      expect(direct).not.toBeNull();
      const mine = concat(direct!.chunks);
      expect(mine.byteLength).toBe(direct!.bytes);
      expect(mine.byteLength % 8).toBe(0);
      const theirs = arrowMessage(batch);
      // The body is the same bytes; the flatbuffer says the same things.
      expect(split(mine).body).toEqual(split(theirs).body);
      expect(described(split(mine).metadata)).toEqual(described(split(theirs).metadata));
      // And a reader takes the stream as it would apache-arrow's.
      const encoder = new ArrowMessageEncoder();
      const schemaMessage = concat(encoder.encodeSchema(batch.schema).chunks);
      const stream = concat([schemaMessage, ...encoder.encodeBatch(batch).chunks, ARROW_EOS]);
      const read = tableFromIPC(stream);
      expect(read.numRows).toBe(batch.numRows);
      expect(read.toArray().map((r: { toJSON(): unknown }) => JSON.stringify(r.toJSON(), bigints))).toEqual(
        new Table(batch).toArray().map((r: { toJSON(): unknown }) => JSON.stringify(r.toJSON(), bigints)),
      );
    });
  }

  it('leaves a sliced batch, a dictionary column and batch metadata to apache-arrow, readable all the same', () => {
    const whole = layouts['nulls, booleans and strings']!();
    const sliced = whole.slice(3, 11);
    const dictionary = batchFromColumns({
      d: vectorFromArray(['x', 'y', 'x', 'z'], new Dictionary(new Utf8(), new Int32())),
    });
    const withMetadata = new RecordBatch(
      new Schema(whole.schema.fields),
      makeData({
        type: new Struct(whole.schema.fields),
        length: whole.numRows,
        children: whole.data.children,
      }),
      new Map([['k', 'v']]),
    );
    for (const batch of [sliced, dictionary, withMetadata]) {
      expect(encodeRecordBatchMessage(batch)).toBeNull();
      const encoder = new ArrowMessageEncoder();
      const message = concat(encoder.encodeBatch(batch).chunks);
      expect(message).toEqual(arrowMessage(batch));
    }
    const encoder = new ArrowMessageEncoder();
    const read = tableFromIPC(
      concat([
        ...encoder.encodeSchema(sliced.schema).chunks,
        ...encoder.encodeBatch(sliced).chunks,
        ARROW_EOS,
      ]),
    );
    expect(read.toArray().map((r: { toJSON(): unknown }) => JSON.stringify(r.toJSON()))).toEqual(
      new Table(sliced).toArray().map((r: { toJSON(): unknown }) => JSON.stringify(r.toJSON())),
    );
  });

  it('keeps no block per message it encodes through apache-arrow (one encoder lives as long as its store)', () => {
    const sliced = layouts['nulls, booleans and strings']!().slice(3, 11);
    const dictionary = batchFromColumns({
      d: vectorFromArray(['x', 'y', 'x', 'z'], new Dictionary(new Utf8(), new Int32())),
    });
    const encoder = new ArrowMessageEncoder();
    encoder.encodeSchema(sliced.schema);
    for (let i = 0; i < 1000; i++) {
      encoder.encodeBatch(sliced);
      encoder.encodeBatch(dictionary);
    }
    // apache-arrow's writer pushes a FileBlock per message for a file footer never written here.
    const kept = encoder as unknown as {
      _recordBatchBlocks: unknown[];
      _dictionaryBlocks: unknown[];
      _seenDictionaries: Map<number, unknown>;
    };
    expect(kept._recordBatchBlocks).toHaveLength(0);
    expect(kept._dictionaryBlocks).toHaveLength(0);
    expect(kept._seenDictionaries.size).toBe(0);
  });

  it("writes a dictionary column's dictionary into every stream an encoder opens, not only the first", () => {
    const column = () => vectorFromArray(['x', 'y', 'x', 'z'], new Dictionary(new Utf8(), new Int32()));
    const first = batchFromColumns({ d: column() });
    const encoder = new ArrowMessageEncoder();
    const streams = [first, first].map((batch) =>
      concat([...encoder.encodeSchema(batch.schema).chunks, ...encoder.encodeBatch(batch).chunks, ARROW_EOS]),
    );
    for (const stream of streams) {
      expect(tableFromIPC(stream).getChild('d')!.toArray()).toEqual(['x', 'y', 'x', 'z']);
    }
  });

  it("passes the server's strict reader of untrusted Arrow bodies (bounds, offsets, alignment)", () => {
    // That reader takes tensor-shaped columns only: numbers and (fixed-size) lists of numbers.
    const batch = batchFromColumns({
      x: vectorFromArray(
        Array.from({ length: n }, (_, i) => (i === 3 ? null : i / 4)),
        new Float32(),
      ),
      'in.tensor': vectorFromArray(
        Array.from({ length: n }, (_, i) => Array.from({ length: 18 }, (_, j) => i + j)),
        new FixedSizeList(18, new Field('item', new Float32(), true)),
      ),
      'out.variable': vectorFromArray(
        Array.from({ length: n }, (_, i) => Array.from({ length: 1 + (i % 3) }, (_, j) => j)),
        new List(new Field('item', new Float64(), true)),
      ),
    });
    const encoder = new ArrowMessageEncoder();
    const direct = encodeRecordBatchMessage(batch);
    expect(direct).not.toBeNull();
    const stream = concat([...encoder.encodeSchema(batch.schema).chunks, ...direct!.chunks, ARROW_EOS]);
    expect(checkArrowIpc(stream)).toMatchObject({ layout: 'stream', rows: n, batches: 1 });
  });

  it('writes a table built from arrays the same body as apache-arrow', () => {
    const batch = tableFromArrays({ x: Float32Array.from([1, 2, 3]), y: Int32Array.from([4, 5, 6]) })
      .batches[0]!;
    const direct = encodeRecordBatchMessage(batch);
    expect(direct).not.toBeNull();
    expect(split(concat(direct!.chunks)).body).toEqual(split(arrowMessage(batch)).body);
  });
});

/** One request of the bench's JSON 1 × 16 load: one record of the 18-number `tensor`, one float32 output. */
function benchRequest(k: number, time: number): InferenceResult {
  const records = [{ tensor: Array.from({ length: 18 }, (_, j) => k * 0.5 + j) }];
  const output = { name: 'variable', type: 'float32' as const, dims: [1, 1], data: Float32Array.of(k / 4) };
  return new InferenceResult({ kind: 'records', records }, ['tensor'], [output], 1, time);
}

describe("the server's JSON records log rows, as the log writer thread writes them", () => {
  it("take the direct encoder, not apache-arrow's writer (coalesced, and with times clamped)", async () => {
    const sent: LogItemsMessage[] = [];
    const handOff = new LogHandOff({
      queueCapacityRows: 100_000,
      handOffDelayMs: 50,
      handOffRows: 100_000,
      clock: new ManualClock(1_000),
      packer: {},
      closing: () => false,
      post: (msg) => sent.push(msg),
    });
    handOff.attach();
    handOff.wantsRows();
    // Pipeline 1: many one-record requests, as JSON 1 × 16 hands them over (one time going back).
    for (let k = 0; k < 64; k++)
      await handOff.append(1, benchRequest(k, 1_733_200_000_000 + k - (k === 40 ? 30 : 0)).logRows());
    // Pipelines 2…: every JSON records case of the log's tests (staged, kept big, the table of a bool output).
    const cases = recordsLogCases();
    for (const [i, c] of cases.entries()) await handOff.append(2 + i, c.make().logRows());
    handOff.hurry();
    // A big (kept) source is packed a slice per turn of the event loop.
    for (let turn = 0; turn < 100 && sent.length === 0; turn++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(sent).toHaveLength(1);
    const unpacker = new LogBatchUnpacker();
    unpacker.learn(sent[0]!.body.schemas);
    const groups = unpacker.unpack(sent[0]!.body);
    expect(groups).toHaveLength(1 + cases.length);
    let clamped = 0;
    for (const group of groups) {
      // As LogWriter.#writePipeline: coalesce the pipeline's batches, clamp their times, encode.
      let last = -(2n ** 63n);
      for (const merged of coalesceLogBatches(group)) {
        const step = clampLogTime(merged, last);
        if (step.batch !== merged) clamped++;
        last = step.last;
        expect(encodeRecordBatchMessage(step.batch)).not.toBeNull();
      }
    }
    expect(groups[0]!.reduce((n, b) => n + b.numRows, 0)).toBe(64);
    expect(clamped).toBe(1);
  });
});

function bigints(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
