import { describe, expect, it } from 'vitest';
import {
  Field,
  Float32,
  Int32,
  RecordBatch,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  makeData,
  tableFromIPC,
  tableToIPC,
} from 'apache-arrow';
import type { Data } from 'apache-arrow';
import { batchOf, checkLogRowSource, clampLogTime } from './log-batch-checks.js';
import type { LogRowLeaf } from './log-row-source.js';
import { kindOf } from './log-staging.js';
import { timeValues } from './segment-file.js';

const fields = [
  new Field('time', new TimestampMillisecond(), false),
  new Field('out.v', new Float32(), true),
  new Field('n', new Int32(), false),
];
const schema = new Schema(fields);

function columns(rows: number): Data[] {
  return [
    makeData({
      type: new TimestampMillisecond(),
      length: rows,
      data: BigInt64Array.from({ length: rows }, (_, i) => 1_764_950_400_000n + BigInt(i)) as never,
    }),
    makeData({
      type: new Float32(),
      length: rows,
      data: Float32Array.from({ length: rows }, (_, i) => i / 2),
      nullBitmap: Uint8Array.from({ length: Math.ceil(rows / 8) }, () => 0b1011_0111),
    }),
    makeData({ type: new Int32(), length: rows, data: Int32Array.from({ length: rows }, (_, i) => i * i) }),
  ];
}

const rowsOf = (batch: RecordBatch): string[] =>
  new Table(batch)
    .toArray()
    .map((r: { toJSON(): unknown }) =>
      JSON.stringify(r.toJSON(), (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)),
    );

describe('batchOf', () => {
  it('makes a batch that keeps the schema object and behaves as the constructor makes it', () => {
    const data = makeData({ type: new Struct(fields), length: 11, nullCount: 0, children: columns(11) });
    const batch = batchOf(schema, data);
    const constructed = new RecordBatch(schema, data);
    expect(batch.schema).toBe(schema);
    expect(batch.data).toBe(data); // made without the constructor (which rebuilds the struct)
    expect(batch).toBeInstanceOf(RecordBatch);
    expect(RecordBatch.isRecordBatch(batch)).toBe(true);
    expect(batch.numRows).toBe(11);
    expect(batch.numCols).toBe(3);
    expect(batch.nullCount).toBe(constructed.nullCount);
    expect(batch.metadata).toEqual(new Map());
    expect(batch.dictionaries.size).toBe(0);
    expect(batch.getChild('out.v')?.toArray()).toEqual(constructed.getChild('out.v')?.toArray());
    expect(rowsOf(batch)).toEqual(rowsOf(constructed));
    expect(rowsOf(batch.slice(2, 9))).toEqual(rowsOf(constructed.slice(2, 9)));
    expect(rowsOf(batch.select(['n', 'time']))).toEqual(rowsOf(constructed.select(['n', 'time'])));
    expect(tableFromIPC(tableToIPC(new Table(batch))).toArray().length).toBe(11);
  });

  it('pads a short column with nulls, as the constructor does, and still keeps the schema object', () => {
    const short = columns(11);
    short[2] = columns(5)[2]!;
    const data = makeData({ type: new Struct(fields), length: 11, nullCount: 0, children: short });
    const batch = batchOf(schema, data);
    expect(batch.schema).toBe(schema);
    expect(batch.getChild('n')?.toArray()).toEqual(new RecordBatch(schema, data).getChild('n')?.toArray());
    expect(batch.getChild('n')?.nullCount).toBe(6);
  });

  it("reads rows under the schema's field names, as the constructor's batch does, when the data's struct type names other fields", () => {
    const otherType = new Struct([
      new Field('a', new Float32(), true),
      new Field('b', new Float32(), false),
      new Field('c', new Int32(), true),
    ]);
    const data = makeData({ type: otherType, length: 11, nullCount: 0, children: columns(11) });
    const constructed = new RecordBatch(schema, data);
    const batch = batchOf(schema, data);
    expect(batch.schema).toBe(schema);
    expect(batch.data.type.children.map((f) => f.name)).toEqual(['time', 'out.v', 'n']);
    expect(batch.data.type.children.map((f) => f.name)).toEqual(
      constructed.data.type.children.map((f) => f.name),
    );
    expect(Object.keys(batch.get(0)!.toJSON())).toEqual(['time', 'out.v', 'n']);
    expect(rowsOf(batch)).toEqual(rowsOf(constructed));
  });
});

/** A batch of `schema` whose `time` column holds `times`. */
function timed(times: bigint[]): RecordBatch {
  const children = columns(times.length);
  children[0] = makeData({
    type: new TimestampMillisecond(),
    length: times.length,
    data: BigInt64Array.from(times) as never,
  });
  return batchOf(
    schema,
    makeData({ type: new Struct(fields), length: times.length, nullCount: 0, children }),
  );
}

describe('clampLogTime', () => {
  const MIN = -(2n ** 63n);

  it('returns a batch already in order as it is, with its last time', () => {
    for (const times of [
      [1_764_950_400_000n, 1_764_950_400_000n, 1_764_950_400_007n],
      [-5n, -3n, 0n, 2n ** 52n],
    ]) {
      const batch = timed(times);
      const clamped = clampLogTime(batch, MIN);
      expect(clamped.batch).toBe(batch);
      expect(clamped.last).toBe(times.at(-1));
    }
    const empty = timed([]);
    expect(clampLogTime(empty, 42n)).toEqual({ batch: empty, last: 42n });
  });

  it('raises times below the running maximum, or below the time before the batch', () => {
    const late = clampLogTime(timed([10n, 7n, 12n, 11n]), MIN);
    expect([...timeValues(late.batch)]).toEqual([10n, 10n, 12n, 12n]);
    expect(late.last).toBe(12n);
    const after = clampLogTime(timed([5n, 6n]), 8n);
    expect([...timeValues(after.batch)]).toEqual([8n, 8n]);
    expect(after.last).toBe(8n);
  });

  it('tells apart times that a double cannot (beyond 2^53)', () => {
    const big = 2n ** 60n;
    const clamped = clampLogTime(timed([big + 1n, big]), MIN);
    expect([...timeValues(clamped.batch)]).toEqual([big + 1n, big + 1n]);
    expect(clamped.last).toBe(big + 1n);
    const above = clampLogTime(timed([big]), big + 1n);
    expect([...timeValues(above.batch)]).toEqual([big + 1n]);
    const negative = clampLogTime(timed([-big, -big - 1n]), MIN);
    expect([...timeValues(negative.batch)]).toEqual([-big, -big]);
  });
});

describe('checkLogRowSource', () => {
  const fixed = new Schema([fields[0]!, fields[2]!]);
  const right: LogRowLeaf[] = [
    { kind: kindOf(new BigInt64Array(0)), width: 1 },
    { kind: kindOf(new Int32Array(0)), width: 1 },
  ];

  it("returns the schema's shared leaves for leaves equal to them", () => {
    const leaves = checkLogRowSource(fixed, right);
    expect(leaves).toEqual(right);
    expect(checkLogRowSource(fixed, [...right])).toBe(leaves);
  });

  it('refuses leaves with a hole or a non-object entry, or no leaves array, with log_rows_refused (not a TypeError)', () => {
    const bad: unknown[] = [
      [right[0], null],
      [right[0], undefined],
      [42, right[1]],
      undefined,
      { length: 2 },
    ];
    for (const got of bad)
      expect(() => checkLogRowSource(fixed, got as readonly LogRowLeaf[])).toThrow(
        expect.objectContaining({ code: 'log_rows_refused' }),
      );
  });
});
