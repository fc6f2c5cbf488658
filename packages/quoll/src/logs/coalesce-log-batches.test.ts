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
  Uint32,
  Utf8,
  makeData,
  vectorFromArray,
} from 'apache-arrow';
import type { Data } from 'apache-arrow';
import { coalesceLogBatches } from './coalesce-log-batches.js';

const W = 3;

/** A result-shaped batch: time, in.tensor (FixedSizeList<Float64>[3]), out.variable (FixedSizeList<Float32>[1]), check_failures. */
function resultBatch(first: number, n: number, inName = 'in.tensor'): RecordBatch {
  const ts = new TimestampMillisecond();
  const inType = new FixedSizeList(W, new Field('item', new Float64(), false));
  const outType = new FixedSizeList(1, new Field('item', new Float32(), false));
  const fields = [
    new Field('time', ts, false),
    new Field(inName, inType, false),
    new Field('out.variable', outType, false),
    new Field('check_failures', new Uint32(), false),
  ];
  const time = new BigInt64Array(n);
  const inputs = new Float64Array(n * W);
  const outputs = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    time[i] = BigInt(1000 + first + i);
    for (let j = 0; j < W; j++) inputs[i * W + j] = (first + i) * 10 + j;
    outputs[i] = (first + i) / 2;
  }
  const children = [
    makeData({ type: ts, length: n, data: time as never }),
    makeData({
      type: inType,
      length: n,
      child: makeData({ type: new Float64(), length: n * W, data: inputs }),
    }),
    makeData({
      type: outType,
      length: n,
      child: makeData({ type: new Float32(), length: n, data: outputs }),
    }),
    makeData({ type: new Uint32(), length: n, data: new Uint32Array(n) }),
  ];
  return new RecordBatch(new Schema(fields), makeData({ type: new Struct(fields), length: n, children }));
}

function rowsOf(batches: RecordBatch[]): unknown[] {
  return batches.flatMap((b) =>
    Array.from({ length: b.numRows }, (_, i) => {
      const row = b.get(i)?.toJSON() as Record<string, unknown>;
      return Object.fromEntries(
        Object.entries(row).map(([k, v]) => [
          k,
          v !== null && typeof v === 'object' && 'toArray' in v
            ? Array.from((v as { toArray(): ArrayLike<number> }).toArray())
            : v,
        ]),
      );
    }),
  );
}

describe('coalesceLogBatches', () => {
  it('merges consecutive small batches of one schema into one batch with the same rows in order', () => {
    const input = [resultBatch(0, 1), resultBatch(1, 1), resultBatch(2, 3), resultBatch(5, 1)];
    const out = coalesceLogBatches(input);
    expect(out).toHaveLength(1);
    expect(out[0]?.numRows).toBe(6);
    expect(rowsOf(out)).toEqual(rowsOf(input));
  });

  it('merges sliced batches from their slice start', () => {
    // RecordBatch.slice takes (begin, end).
    const input = [resultBatch(0, 10).slice(3, 5), resultBatch(100, 10).slice(7, 10)];
    const out = coalesceLogBatches(input);
    expect(out).toHaveLength(1);
    expect(rowsOf(out)).toEqual(rowsOf(input));
    expect((rowsOf(out)[2] as { 'in.tensor': number[] })['in.tensor']).toEqual([1070, 1071, 1072]);
  });

  it('starts a new batch at a schema change and at the row cap, and passes big batches through', () => {
    const big = resultBatch(50, 2000);
    const input = [
      resultBatch(0, 1),
      resultBatch(1, 1, 'in.other'),
      resultBatch(2, 1, 'in.other'),
      big,
      resultBatch(3, 4),
      resultBatch(7, 4),
      resultBatch(11, 4),
    ];
    const out = coalesceLogBatches(input, 1024, 8);
    expect(out.map((b) => b.numRows)).toEqual([1, 2, 2000, 8, 4]);
    expect(out[2]).toBe(big);
    expect(rowsOf(out)).toEqual(rowsOf(input));
  });

  it('keeps batches apart when a column cannot be merged (strings)', () => {
    const withText = (s: string): RecordBatch => {
      const fields = [
        new Field('time', new TimestampMillisecond(), false),
        new Field('out.label', new Utf8(), false),
      ];
      const children = [
        makeData({ type: new TimestampMillisecond(), length: 1, data: new BigInt64Array([5n]) as never }),
        vectorFromArray([s], new Utf8()).data[0] as Data,
      ];
      return new RecordBatch(new Schema(fields), makeData({ type: new Struct(fields), length: 1, children }));
    };
    const input = [withText('a'), withText('b')];
    const out = coalesceLogBatches(input);
    expect(out).toHaveLength(2);
    expect(out[0]).toBe(input[0]);
  });
});
