import { describe, expect, it } from 'vitest';
import {
  Field,
  FixedSizeList,
  Float32,
  Float64,
  RecordBatch,
  Schema,
  Struct,
  TimestampMillisecond,
  makeData,
} from 'apache-arrow';
import type { Data } from 'apache-arrow';
import { LogBatchPacker, LogBatchUnpacker } from './log-batch-transfer.js';
import { InferenceResult } from '../inference/inference-result.js';
import { admitLogRows } from './log-append-rules.js';
import type { LogRowSource } from './log-row-source.js';
import { LogStaging, STAGE_MAX_BYTES, StagedRun } from './log-staging.js';

const inType = new FixedSizeList(3, new Field('item', new Float64(), false));
const fields = [
  new Field('time', new TimestampMillisecond(), true),
  new Field('in.x', inType, false),
  new Field('out.v', new Float32(), false),
];
const schema = new Schema(fields);

/** A batch of `schema` (the shared object, as inference results give it): row i has time t, inputs [v, v+0.25, v+0.5] and output v. */
function batch(time: number, values: number[], nullTimeAt = -1): RecordBatch {
  const n = values.length;
  const bitmap = new Uint8Array(Math.ceil(n / 8)).fill(0xff);
  if (nullTimeAt >= 0) bitmap[nullTimeAt >> 3]! &= ~(1 << (nullTimeAt & 7));
  const t = makeData({
    type: new TimestampMillisecond(),
    length: n,
    data: BigInt64Array.from(values, () => BigInt(time)) as never,
    ...(nullTimeAt >= 0 ? { nullBitmap: bitmap } : {}),
  });
  const items = makeData({
    type: new Float64(),
    length: n * 3,
    data: Float64Array.from(values.flatMap((v) => [v, v + 0.25, v + 0.5])),
  });
  const x = makeData({ type: inType, length: n, child: items });
  const v = makeData({ type: new Float32(), length: n, data: Float32Array.from(values) });
  const b = new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, children: [t, x, v] }));
  (b as { schema: Schema }).schema = schema;
  return b;
}

/**
 * A batch that says it has `n` rows but whose last column holds no value: copying it fails
 * (a RangeError) after its first columns were copied.
 */
function torn(time: number, n: number): RecordBatch {
  const whole = batch(
    time,
    Array.from({ length: n }, (_, i) => 100 + i),
  );
  const [t, x] = whole.data.children;
  const v = makeData({ type: new Float32(), length: n, data: new Float32Array(0) });
  const b = new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, children: [t!, x!, v] }));
  (b as { schema: Schema }).schema = schema;
  return b;
}

/** Packs staged groups as the hand-off does and reads them back as the writer thread does. */
function crossing(groups: Parameters<LogBatchPacker['pack']>[0]): RecordBatch[][] {
  const body = new LogBatchPacker().pack(groups);
  const unpacker = new LogBatchUnpacker();
  unpacker.learn(body.schemas);
  return unpacker.unpack(body);
}

function rows(batches: RecordBatch[]): { t: (number | null)[]; x: number[][]; v: number[] }[] {
  return batches.map((b) => ({
    t: [...b.getChild('time')!].map((t) => (t === null ? null : Number(t))),
    x: [...b.getChild('in.x')!].map((l) => [...(l as { toArray(): Float64Array }).toArray()]),
    v: [...(b.getChild('out.v')!.toArray() as Float32Array)],
  }));
}

describe('LogStaging', () => {
  it('copies each append as it comes: later changes to the caller’s arrays do not reach the log', () => {
    const staging = new LogStaging({ maxRows: 1_000, maxBytes: 1 << 20 });
    const a = batch(1, [1, 2]);
    staging.add(7, [a]);
    // The caller reuses its buffers once the append is admitted.
    (a.getChild('out.v')!.data[0]!.values as Float32Array).fill(99);
    (a.getChild('in.x')!.data[0]!.children[0]!.values as Float64Array).fill(99);
    staging.add(7, [batch(2, [3])]);
    const staged = staging.take();
    expect(staging.stagedRows).toBe(0);
    expect(staged.rows).toBe(3);
    const group = staged.groups.get(7)!;
    // One run, no batch kept.
    expect(group).toHaveLength(1);
    expect(group[0]).toBeInstanceOf(StagedRun);
    expect(rows(crossing([group]).flat())).toEqual([
      {
        t: [1, 1, 2],
        x: [
          [1, 1.25, 1.5],
          [2, 2.25, 2.5],
          [3, 3.25, 3.5],
        ],
        v: [1, 2, 3],
      },
    ]);
  });

  it('copies sliced batches from their first row, keeps batches with nulls as they are and in order, and starts a new run at the cap', () => {
    const staging = new LogStaging({ maxRows: 4, maxBytes: 1 << 20 });
    const whole = batch(1, [10, 11, 12, 13]);
    staging.add(1, [whole.slice(1, 3)]);
    const withNull = batch(2, [20, 21], 1);
    staging.add(1, [withNull]);
    staging.add(1, [batch(3, [30, 31, 32])]);
    staging.add(1, [batch(4, [40, 41])]);
    staging.add(2, [batch(5, [50])]);
    const staged = staging.take();
    const g1 = staged.groups.get(1)!;
    expect(g1.map((e) => (e instanceof StagedRun ? `run ${e.rows}` : `batch ${e.numRows}`))).toEqual([
      'run 2',
      'batch 2',
      'run 3',
      'run 2',
    ]);
    // The batch with a null is the caller's own object (it cannot be merged, so it is packed as it is).
    expect(g1[1]).toBe(withNull);
    const [read1, read2] = crossing([g1, staged.groups.get(2)!]);
    expect(rows(read1!).map((r) => r.v)).toEqual([
      [11, 12],
      [20, 21],
      [30, 31, 32],
      [40, 41],
    ]);
    expect(rows(read1!)[0]!.x).toEqual([
      [11, 11.25, 11.5],
      [12, 12.25, 12.5],
    ]);
    expect(rows(read1!)[1]!.t).toEqual([2, null]);
    expect(rows(read2!).map((r) => r.v)).toEqual([[50]]);
  });

  it('stages an append all or nothing: a copy that fails part-way leaves the run it was merging into as it was', () => {
    const staging = new LogStaging({ maxRows: 1_000, maxBytes: 1 << 20 });
    staging.add(1, [batch(1, [1, 2])]);
    // The first batch of this append is copied whole, the second fails after its first columns.
    expect(() => staging.add(1, [batch(2, [3]), torn(9, 3)])).toThrow(RangeError);
    // A pipeline whose first append fails keeps no group (nor an empty run).
    expect(() => staging.add(2, [torn(9, 2)])).toThrow(RangeError);
    staging.add(1, [batch(4, [4])]);
    expect(staging.stagedRows).toBe(3);
    const staged = staging.take();
    expect([...staged.groups.keys()]).toEqual([1]);
    const group = staged.groups.get(1)!;
    expect(group.map((e) => (e instanceof StagedRun ? `run ${e.rows}` : `batch ${e.numRows}`))).toEqual([
      'run 3',
    ]);
    // Every column of the run holds the same rows: nothing of the failed append, none shifted.
    expect(rows(crossing([group]).flat())).toEqual([
      {
        t: [1, 1, 4],
        x: [
          [1, 1.25, 1.5],
          [2, 2.25, 2.5],
          [4, 4.25, 4.5],
        ],
        v: [1, 2, 4],
      },
    ]);
  });

  it('keeps a batch of STAGE_MAX_BYTES or more as it is (the packer copies it once), in order between staged runs', () => {
    const staging = new LogStaging({ maxRows: 100_000, maxBytes: 1 << 30 });
    // 36 B per row: 1000 rows are past 32 KiB.
    const values = Array.from({ length: 1000 }, (_, i) => i);
    const big = batch(2, values);
    expect(big.data.byteLength).toBeGreaterThanOrEqual(STAGE_MAX_BYTES);
    staging.add(1, [batch(1, [-1])]);
    staging.add(1, [big]);
    staging.add(1, [batch(3, [-2])]);
    const group = staging.take().groups.get(1)!;
    expect(group.map((e) => (e instanceof StagedRun ? `run ${e.rows}` : `batch ${e.numRows}`))).toEqual([
      'run 1',
      'batch 1000',
      'run 1',
    ]);
    expect(group[1]).toBe(big);
    expect(rows(crossing([group]).flat()).map((r) => r.v)).toEqual([[-1], values, [-2]]);
  });

  it('grows a run past its first buffer, and reuses released buffers for later runs', () => {
    const staging = new LogStaging({ maxRows: 100_000, maxBytes: 1 << 30 });
    const values = Array.from({ length: 300 }, (_, i) => i);
    // 300 rows × 3 Float64 = 7.2 KB per append: past the first 4 KiB buffer.
    for (let k = 0; k < 5; k++) staging.add(1, [batch(k, values)]);
    const first = staging.take();
    const read = crossing([first.groups.get(1)!]).flat();
    expect(read.map((b) => b.numRows)).toEqual([1500]);
    const x = (read[0]!.getChild('in.x')!.data[0] as Data).children[0]!.values as Float64Array;
    expect(x.length).toBe(4500);
    expect([x[0], x[899 * 3 + 2], x[4499]]).toEqual([0, 299.5, 299.5]);
    const pooledBefore = staging.pooledBuffers;
    staging.release(first);
    expect(staging.pooledBuffers).toBeGreaterThan(pooledBefore);
    expect(first.groups.size).toBe(0);
    const pooled = staging.pooledBuffers;
    staging.add(1, [batch(9, [1])]);
    // The new run's three leaves came from the pool.
    expect(staging.pooledBuffers).toBe(pooled - 3);
    const next = staging.take();
    expect(rows(crossing([next.groups.get(1)!]).flat())[0]!.v).toEqual([1]);
    // The busy pipeline's next run starts as big as its last; another pipeline's starts small.
    const leafBytes = (staged: ReturnType<LogStaging['take']>, pipelineId: number): number[] =>
      (staged.groups.get(pipelineId)![0] as StagedRun).leaves.map((l) => l.buf.byteLength);
    expect(leafBytes(next, 1)[1]).toBeGreaterThanOrEqual(1500 * 3 * 8);
    staging.add(2, [batch(9, [1])]);
    expect(leafBytes(staging.take(), 2)).toEqual([4096, 4096, 4096]);
  });
});

describe('LogStaging: the size a run starts at', () => {
  /** The byte length of each leaf buffer of pipeline `pipelineId`'s first run in `staged`. */
  const leafBytes = (staged: ReturnType<LogStaging['take']>, pipelineId: number): number[] =>
    (staged.groups.get(pipelineId)![0] as StagedRun).leaves.map((l) => l.buf.byteLength);

  it('starts a run as big as the biggest of the pipeline\u2019s recent runs, not its last: a hand-off that ended in a short run does not make the next full one grow', () => {
    // A hand-off of more rows than a run holds ends in a short run (at Arrow 100: 16 384 rows,
    // then the rest): the next run must not start at the short run's size and copy its rows
    // into bigger buffers, again and again, as it fills.
    const staging = new LogStaging({ maxRows: 1_000, maxBytes: 1 << 30 });
    const values = Array.from({ length: 100 }, (_, i) => i);
    for (let k = 0; k < 11; k++) staging.add(1, [batch(k, values)]);
    const first = staging.take();
    expect(first.groups.get(1)!.map((e) => (e as StagedRun).rows)).toEqual([1_000, 100]);
    staging.release(first);
    staging.add(1, [batch(20, values)]);
    // 1000 rows: 8 000 B of `time`, 24 000 B of `in.x` (3 Float64), 4 000 B of `out.v`.
    const [time, x, v] = leafBytes(staging.take(), 1);
    expect(time).toBeGreaterThanOrEqual(8_000);
    expect(x).toBeGreaterThanOrEqual(24_000);
    expect(v).toBeGreaterThanOrEqual(4_000);
  });

  it('starts a run past 1 MiB when the pipeline\u2019s runs are that big', () => {
    const staging = new LogStaging({ maxRows: 1_000_000, maxBytes: 1 << 30 });
    // 500 rows (18 KB: staged) an append, 64 500 rows: the `in.x` leaf holds 1.5 MB.
    const values = Array.from({ length: 500 }, (_, i) => i);
    for (let k = 0; k < 129; k++) staging.add(1, [batch(k, values)]);
    const first = staging.take();
    expect((first.groups.get(1)![0] as StagedRun).leaves[1]!.used).toBe(1_548_000);
    staging.release(first);
    staging.add(1, [batch(0, values)]);
    expect(leafBytes(staging.take(), 1)[1]).toBeGreaterThanOrEqual(1_548_000);
  });

  it('starts a pipeline\u2019s runs small again once its traffic has stayed low for a while', () => {
    const staging = new LogStaging({ maxRows: 1_000_000, maxBytes: 1 << 30 });
    const values = Array.from({ length: 500 }, (_, i) => i);
    for (let k = 0; k < 20; k++) staging.add(1, [batch(k, values)]);
    staging.release(staging.take());
    for (let k = 0; k < 40; k++) {
      staging.add(1, [batch(k, [1])]);
      staging.release(staging.take());
    }
    staging.add(1, [batch(0, [1])]);
    expect(leafBytes(staging.take(), 1)).toEqual([4096, 4096, 4096]);
  });
});

describe('LogStaging and a row source’s `copied` hook', () => {
  /** A JSON records result's log rows (a row source), `n` rows of 18 numbers, its `copied` calls counted. */
  function source(n: number): { rows: LogRowSource; copied: () => number } {
    const records = Array.from({ length: n }, (_, r) => ({
      tensor: Array.from({ length: 18 }, (_, i) => r + i),
    }));
    const outputs = [{ name: 'y', type: 'float32' as const, dims: [n, 1], data: new Float32Array(n) }];
    const result = new InferenceResult({ kind: 'records', records }, ['tensor'], outputs, n, 1);
    const inner = result.logRows() as LogRowSource;
    let calls = 0;
    const rows: LogRowSource = {
      kind: 'log-row-source',
      schema: inner.schema,
      numRows: inner.numRows,
      leaves: inner.leaves,
      byteLength: inner.byteLength,
      writeLeaf: (index, target) => inner.writeLeaf(index, target),
      leafWriter: (index, target) => inner.leafWriter!(index, target),
      toTable: () => inner.toTable(),
      copied: () => void calls++,
    };
    return { rows, copied: () => calls };
  }

  it('tells a source it copied at admission that the log will not read it again, not one it keeps for the packer', () => {
    const staging = new LogStaging({ maxRows: 100_000, maxBytes: 1 << 24 });
    const small = source(100);
    expect(small.rows.byteLength).toBeLessThan(STAGE_MAX_BYTES);
    staging.add(1, admitLogRows(1, small.rows).batches);
    expect(small.copied()).toBe(1);
    const big = source(250);
    expect(big.rows.byteLength).toBeGreaterThanOrEqual(STAGE_MAX_BYTES);
    staging.add(1, admitLogRows(1, big.rows).batches);
    expect(big.copied()).toBe(0);
  });

  it('refuses a source whose `copied` is not a function at admission', () => {
    const bad = { ...source(1).rows, copied: 7 } as unknown as LogRowSource;
    expect(() => admitLogRows(1, bad)).toThrow(expect.objectContaining({ code: 'log_rows_refused' }));
  });
});
