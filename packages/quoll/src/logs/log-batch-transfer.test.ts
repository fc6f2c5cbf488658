import { describe, expect, it } from 'vitest';
import {
  Field,
  FixedSizeList,
  Float32,
  RecordBatch,
  Schema,
  Struct,
  TimestampMillisecond,
  makeData,
} from 'apache-arrow';
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
    // The second group's two batches were merged into one.
    expect(groups.map((g) => g.length)).toEqual([1, 1, 1]);
    expect(groups.map((g) => g.map((b) => b.numRows))).toEqual([[2], [2], [1]]);
    expect(new Set(all.map((b) => b.schema)).size).toBe(1);
    expect(all.flatMap((b) => Array.from(b.getChild('out.v')!.toArray() as Float32Array))).toEqual([
      0.5, 1.5, 2.5, 3.5, 4.5,
    ]);
    expect(all.flatMap((b) => Array.from(b.getChild('time')!.toArray() as BigInt64Array, Number))).toEqual([
      1, 2, 3, 4, 5,
    ]);
  });

  it("merges a group's batches of fixed-width columns within the row cap, and keeps batches with nulls apart", () => {
    const listFields = [
      new Field('time', new TimestampMillisecond(), false),
      new Field('in.x', new FixedSizeList(2, new Field('item', new Float32(), false)), false),
    ];
    const listSchema = new Schema(listFields);
    const listBatch = (first: number, n: number): RecordBatch => {
      const time = makeData({
        type: new TimestampMillisecond(),
        length: n,
        data: BigInt64Array.from({ length: n }, (_, i) => BigInt(first + i)) as never,
      });
      const x = makeData({
        type: listFields[1]!.type as FixedSizeList<Float32>,
        length: n,
        child: makeData({
          type: new Float32(),
          length: 2 * n,
          data: Float32Array.from({ length: 2 * n }, (_, i) => first * 2 + i),
        }),
      });
      const b = new RecordBatch(
        listSchema,
        makeData({ type: new Struct(listFields), length: n, children: [time, x] }),
      );
      (b as { schema: Schema }).schema = listSchema;
      return b;
    };
    const packer = new LogBatchPacker({ mergeMaxRows: 5 });
    const unpacker = new LogBatchUnpacker();
    // A sliced batch (views that do not start at their buffer's start) merges like any other.
    const sliced = listBatch(10, 4).slice(1, 3);
    const body = packer.pack([
      [listBatch(0, 2), listBatch(2, 2), listBatch(4, 3), sliced, batch([1, null], [0, 0])],
    ]);
    unpacker.learn(body.schemas);
    const [group] = unpacker.unpack(body);
    // 2 + 2 merged; + 3 would pass the cap of 5, so a new run: 3 + 2 (sliced); the batch with nulls alone.
    expect(group!.map((b) => b.numRows)).toEqual([4, 5, 2]);
    const merged = group!.slice(0, 2);
    expect(merged.flatMap((b) => Array.from(b.getChild('time')!.toArray() as BigInt64Array, Number))).toEqual(
      [0, 1, 2, 3, 4, 5, 6, 11, 12],
    );
    expect(
      merged.flatMap((b) => Array.from(b.getChild('in.x')!.data[0]!.children[0]!.values as Float32Array)),
    ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 22, 23, 24, 25]);
    const withNulls = group![2]!;
    expect(withNulls.getChild('time')!.nullCount).toBe(1);
    expect(withNulls.getChild('time')!.get(0)).toBe(1);
  });

  it('reuses an arena given back instead of allocating one', () => {
    const packer = new LogBatchPacker();
    const unpacker = new LogBatchUnpacker();
    const first = packer.pack([[batch([1, 2], [0.5, 1.5])]]);
    unpacker.learn(first.schemas);
    expect(unpacker.unpack(first).flat()[0]!.getChild('out.v')!.toArray()).toEqual(
      new Float32Array([0.5, 1.5]),
    );
    packer.recycle([first.arena]);
    expect(packer.pooledArenas).toBe(1);
    const second = packer.pack([[batch([3], [2.5])]]);
    expect(second.arena).toBe(first.arena);
    expect(packer.pooledArenas).toBe(0);
    // An arena of a backlog (over 8 MiB) is not kept.
    packer.recycle([new ArrayBuffer(16 * 1024 * 1024)]);
    expect(packer.pooledArenas).toBe(0);
    // The reused arena holds the new rows.
    expect(unpacker.unpack(second).flat()[0]!.getChild('out.v')!.toArray()).toEqual(new Float32Array([2.5]));
  });

  it('refuses nulls in time for a schema it has already accepted', () => {
    expect(() => checkLogBatch(batch([1, 2], [0, 0]))).not.toThrow();
    expect(() => checkLogBatch(batch([3, null], [0, 0]))).toThrow(
      expect.objectContaining({ code: 'invalid_request' }),
    );
  });
});
