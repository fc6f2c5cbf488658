import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import {
  Field,
  Float32,
  RecordBatch,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  makeData,
} from 'apache-arrow';
import { ManualClock } from '../clock/index.js';
import { LogBatchUnpacker, PACK_SLICE_BYTES } from './log-batch-transfer.js';
import type { LogPackError } from './log-batch-transfer.js';
import { LogHandOff } from './log-hand-off.js';
import type { LogHandOffOptions, LogItemsMessage } from './log-hand-off.js';
import type { LogRowLeaf, LogRowSource } from './log-row-source.js';
import { kindOf } from './log-staging.js';

// A million-row append (one big inference) is packed for the writer thread in slices of
// `sliceBytes`, one per turn of the event loop, instead of in one go on the request thread
// (measured: 0.24–0.92 s of stall for such a request's copy on a loaded machine, 39–79 ms in
// process on a quiet one). The assertions are on the structure (how many slices, that the event
// loop turns between them, that nothing is posted half-packed), not on time.

const ROWS = 1_000_000;
/** Bytes per row: `time` (8) and `out.v` (4). */
const ROW_BYTES = 12;

const fields = [
  new Field('time', new TimestampMillisecond(), false),
  new Field('out.v', new Float32(), false),
];
const schema = new Schema(fields);

/** A batch of `n` rows at `time`, `out.v` = `first + i`. */
function batch(time: number, n: number, first = 0): RecordBatch {
  const t = makeData({
    type: new TimestampMillisecond(),
    length: n,
    data: new BigInt64Array(n).fill(BigInt(time)) as never,
  });
  const v = makeData({
    type: new Float32(),
    length: n,
    data: Float32Array.from({ length: n }, (_, i) => first + i),
  });
  const b = new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, children: [t, v] }));
  (b as { schema: Schema }).schema = schema;
  return b;
}

/**
 * A big source over a batch's columns (as `InferenceResult.logRows()` gives for JSON records)
 * that counts the rows each `leafWriter` call writes and builds no table.
 */
class SlicedSource implements LogRowSource {
  readonly kind = 'log-row-source' as const;
  readonly schema = schema;
  readonly numRows: number;
  readonly leaves: readonly LogRowLeaf[];
  readonly byteLength: number;
  /** Rows written per `leafWriter` call, per leaf. */
  readonly calls: number[][];
  readonly #columns: ArrayBufferView[];
  readonly #failAt: number | null;
  readonly #table: Table | null;

  /** `failAt`: the row whose write throws; `table`: what {@link toTable} gives (it throws without). */
  constructor(b: RecordBatch, failAt: number | null = null, table: Table | null = null) {
    this.numRows = b.numRows;
    this.#columns = b.data.children.map((c) => c.values as ArrayBufferView);
    this.leaves = this.#columns.map((v) => ({ kind: kindOf(v), width: 1 }));
    this.byteLength = b.data.byteLength;
    this.calls = this.#columns.map(() => []);
    this.#failAt = failAt;
    this.#table = table;
  }

  writeLeaf(): void {
    throw new Error('a big source is written in slices (leafWriter)');
  }

  leafWriter(index: number, target: ArrayBufferView): (rows: number) => void {
    const from = this.#columns[index]!;
    const size = from.byteLength / this.numRows;
    let row = 0;
    return (rows) => {
      if (this.#failAt !== null && row + rows > this.#failAt) throw new Error('a record cannot be read');
      this.calls[index]!.push(rows);
      new Uint8Array(target.buffer, target.byteOffset + row * size, rows * size).set(
        new Uint8Array(from.buffer, from.byteOffset + row * size, rows * size),
      );
      row += rows;
    };
  }

  toTable(): Table {
    if (this.#table === null) throw new Error('no table is built for a big source');
    return this.#table;
  }
}

function setUp(options: Partial<LogHandOffOptions> = {}) {
  const sent: LogItemsMessage[] = [];
  const dropped: LogPackError[] = [];
  const handOff = new LogHandOff({
    queueCapacityRows: 500_000,
    handOffDelayMs: 20,
    handOffRows: 8192,
    clock: new ManualClock(1_000),
    packer: {},
    closing: () => false,
    post: (msg) => sent.push(msg),
    rowsDropped: (err) => dropped.push(err),
    ...options,
  });
  let unpacker = new LogBatchUnpacker();
  /** Per pipeline, the `out.v` values of a message, read back as the writer thread reads them. */
  const read = (msg: LogItemsMessage): Map<number, Float32Array> => {
    unpacker.learn(msg.body.schemas);
    const groups = unpacker.unpack(msg.body);
    const out = new Map<number, Float32Array>();
    msg.pipelineIds.forEach((id, i) => {
      const parts = groups[i]!.map((b) => b.getChild('out.v')!.toArray() as Float32Array);
      const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        all.set(p, at);
        at += p.length;
      }
      out.set(id, all);
    });
    return out;
  };
  return { sent, dropped, handOff, read, newWriter: () => (unpacker = new LogBatchUnpacker()) };
}

/** One turn of the event loop (what a slice yields to). */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function expectValues(values: Float32Array | undefined, n: number, first = 0): void {
  expect(values?.length).toBe(n);
  const expected = Float32Array.from({ length: n }, (_, i) => first + i);
  expect(
    Buffer.from(values!.buffer, values!.byteOffset, values!.byteLength).equals(Buffer.from(expected.buffer)),
  ).toBe(true);
}

describe('LogHandOff: a million-row append', () => {
  it('is packed one slice per turn of the event loop and posted once complete, with every row', async () => {
    const { sent, handOff, read } = setUp();
    handOff.attach();
    handOff.wantsRows();
    const big = batch(1, ROWS);
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    // Above the queue's capacity: admitted because the queue is empty, handed over at once.
    await handOff.push(1, [big], ROWS);
    // The first slice ran within push; nothing is posted half-packed.
    expect(handOff.packSlices).toBe(1);
    expect(sent).toHaveLength(0);
    const slices = Math.ceil((ROWS * ROW_BYTES) / PACK_SLICE_BYTES);
    // Meanwhile the event loop turns: each turn packs at most one more slice.
    let turns = 0;
    while (sent.length === 0) {
      const before = handOff.packSlices;
      await turn();
      turns++;
      expect(handOff.packSlices - before).toBeLessThanOrEqual(1);
      expect(turns).toBeLessThanOrEqual(slices + 5);
    }
    delay.disable();
    expect(handOff.packSlices).toBe(slices);
    expect(turns).toBeGreaterThanOrEqual(slices - 1);
    expect(sent[0]!.seq).toBe(1);
    expectValues(read(sent[0]!).get(1), ROWS);
    // For the record (not asserted: timing): the longest stall the probe saw.
    console.info(`1M-row append: ${slices} slices, event-loop delay max ${(delay.max / 1e6).toFixed(1)} ms`);
  });

  it('keeps appends that come during the packing for the next message, in order', async () => {
    const { sent, handOff, read } = setUp();
    handOff.attach();
    handOff.wantsRows();
    await handOff.push(1, [batch(1, ROWS)], ROWS);
    expect(sent).toHaveLength(0);
    await turn();
    await handOff.push(1, [batch(2, 3, 7)], 3);
    await handOff.push(2, [batch(2, 2, 9)], 2);
    while (sent.length === 0) await turn();
    expect(sent).toHaveLength(1);
    expect([...read(sent[0]!).keys()]).toEqual([1]);
    // The writer asks again: the appends made meanwhile go, after the big one.
    handOff.hurry();
    handOff.wantsRows();
    expect(sent.map((m) => m.seq)).toEqual([1, 3]);
    const second = read(sent[1]!);
    expectValues(second.get(1), 3, 7);
    expectValues(second.get(2), 2, 9);
  });

  it('is given whole, once, to a writer thread restarted while it was being packed', async () => {
    const { sent, handOff, read, newWriter } = setUp();
    handOff.attach();
    handOff.wantsRows();
    await handOff.push(1, [batch(1, ROWS)], ROWS);
    await turn();
    await turn();
    // The writer thread dies mid-packing; the half-packed message is dropped with it.
    handOff.detach();
    for (let i = 0; i < 20; i++) await turn();
    expect(sent).toHaveLength(0);
    newWriter();
    expect(handOff.attach()).toBe(1);
    while (sent.length === 0) await turn();
    for (let i = 0; i < 20; i++) await turn();
    expect(sent).toHaveLength(1);
    expectValues(read(sent[0]!).get(1), ROWS);
    // Confirmed: nothing is sent again to a later writer.
    handOff.confirm(1);
    newWriter();
    expect(handOff.attach()).toBe(0);
    await turn();
    expect(sent).toHaveLength(1);
  });

  it('has a big row source write itself into the arena a slice of rows at a time, never as a table', async () => {
    const { sent, handOff, read } = setUp();
    handOff.attach();
    handOff.wantsRows();
    const source = new SlicedSource(batch(1, ROWS, 5));
    await handOff.push(1, [source], ROWS);
    // Kept at admission: nothing written yet but the first slice.
    expect(source.calls.flat().reduce((a, b) => a + b, 0)).toBeLessThan(ROWS);
    while (sent.length === 0) await turn();
    expectValues(read(sent[0]!).get(1), ROWS, 5);
    // Each leaf in many calls, none of more rows than a slice holds of it.
    source.calls.forEach((calls, leaf) => {
      const perRow = leaf === 0 ? 8 : 4;
      expect(calls.reduce((a, b) => a + b, 0)).toBe(ROWS);
      expect(calls.length).toBeGreaterThanOrEqual(Math.floor((ROWS * perRow) / PACK_SLICE_BYTES));
      expect(Math.max(...calls)).toBeLessThanOrEqual(Math.ceil(PACK_SLICE_BYTES / perRow));
    });
  });

  it('packs again from its table the rows a source cannot write: an acknowledged append loses no row', async () => {
    const { sent, dropped, handOff, read } = setUp({ queueCapacityRows: 2 * ROWS });
    handOff.attach();
    const rows = batch(1, ROWS);
    const failing = new SlicedSource(rows, ROWS / 2, new Table([rows]));
    await handOff.push(1, [batch(1, 4, 100)], 4);
    await handOff.push(1, [failing], ROWS);
    await handOff.push(2, [batch(1, 2, 200)], 2);
    handOff.wantsRows();
    while (sent.length === 0) await turn();
    expect(dropped).toHaveLength(0);
    expect(sent.map((m) => m.seq)).toEqual([3]);
    const got = read(sent[0]!);
    expectValues(got.get(1)?.subarray(0, 4), 4, 100);
    expectValues(got.get(1)?.subarray(4), ROWS);
    expectValues(got.get(2), 2, 200);
  });

  it('leaves out, and tells, rows that cannot be read when packed, nor as a table; the rest of the message goes', async () => {
    const { sent, dropped, handOff, read } = setUp({ queueCapacityRows: 2 * ROWS });
    handOff.attach();
    const bad = new SlicedSource(batch(1, ROWS), ROWS / 2);
    await handOff.push(1, [batch(1, 4, 100)], 4);
    await handOff.push(1, [bad], ROWS);
    await handOff.push(2, [batch(1, 2, 200)], 2);
    handOff.wantsRows();
    while (sent.length === 0) await turn();
    expect(dropped).toHaveLength(1);
    expect(dropped[0]!.entries).toEqual([bad]);
    expect(dropped[0]!.message).toMatch(/1000000 rows.*a record cannot be read/);
    expect(sent.map((m) => m.seq)).toEqual([3]);
    const got = read(sent[0]!);
    expectValues(got.get(1), 4, 100);
    expectValues(got.get(2), 2, 200);
  });
});
