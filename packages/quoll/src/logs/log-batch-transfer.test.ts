import { describe, expect, it } from 'vitest';
import { Field, Float32, RecordBatch, Schema, Struct, TimestampMillisecond, makeData } from 'apache-arrow';
import { checkLogBatch } from './log-batch-checks.js';
import { LogBatchPacker, LogBatchUnpacker } from './log-batch-transfer.js';

const fields = [
  new Field('time', new TimestampMillisecond(), true),
  new Field('out.v', new Float32(), false),
];
const schema = new Schema(fields);

/** A batch of `schema` (the shared object, as inference results give it) with times and values. */
function batch(times: (number | null)[], values: number[]): RecordBatch {
  const n = times.length;
  const nulls = times.some((t) => t === null);
  const bitmap = new Uint8Array(Math.ceil(n / 8));
  times.forEach((t, i) => {
    if (t !== null) bitmap[i >> 3]! |= 1 << (i & 7);
  });
  const time = makeData({
    type: new TimestampMillisecond(),
    length: n,
    data: BigInt64Array.from(times, (t) => BigInt(t ?? 0)) as never,
    ...(nulls ? { nullBitmap: bitmap } : {}),
  });
  const v = makeData({ type: new Float32(), length: n, data: Float32Array.from(values) });
  const b = new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, children: [time, v] }));
  (b as { schema: Schema }).schema = schema;
  return b;
}

describe('log batches crossing to the writer thread', () => {
  it('unpacks every batch of one schema with that one Schema object, rows intact', () => {
    const packer = new LogBatchPacker();
    const unpacker = new LogBatchUnpacker();
    const first = packer.pack([[batch([1, 2], [0.5, 1.5])], [batch([3], [2.5]), batch([4], [3.5])]]);
    unpacker.learn(first.schemas);
    const second = packer.pack([[batch([5], [4.5])]]);
    // The schema crossed once.
    expect(first.schemas).toHaveLength(1);
    expect(second.schemas).toHaveLength(0);
    const groups = [...unpacker.unpack(first), ...unpacker.unpack(second)];
    const all = groups.flat();
    expect(groups.map((g) => g.length)).toEqual([1, 2, 1]);
    expect(new Set(all.map((b) => b.schema)).size).toBe(1);
    expect(all.flatMap((b) => Array.from(b.getChild('out.v')!.toArray() as Float32Array))).toEqual([
      0.5, 1.5, 2.5, 3.5, 4.5,
    ]);
    expect(all.flatMap((b) => Array.from(b.getChild('time')!.toArray() as BigInt64Array, Number))).toEqual([
      1, 2, 3, 4, 5,
    ]);
  });

  it('refuses nulls in time for a schema it has already accepted', () => {
    expect(() => checkLogBatch(batch([1, 2], [0, 0]))).not.toThrow();
    expect(() => checkLogBatch(batch([3, null], [0, 0]))).toThrow(
      expect.objectContaining({ code: 'invalid_request' }),
    );
  });
});
