import { describe, expect, it } from 'vitest';
import {
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int32,
  List,
  makeData,
  Precision,
  Table,
  Type,
  vectorFromArray,
} from 'apache-arrow';
import type { DataType, Float, Data } from 'apache-arrow';
import { admitLogRows, isLogRowSource, kindOf, LogStaging } from '../logs/index.js';
import type { LogRowSource, StagedRun } from '../logs/index.js';
import { InferenceResult } from './inference-result.js';
import { narrowDataToFloat32, narrowToFloat32 } from './narrow-to-float32.js';
import type { WireTensor } from './tensor-data.js';

const TIME = 1_733_200_000_789;
/** Values whose Float32 rounding differs from them, and the edge cases of a Float64 → Float32 cast. */
const AWKWARD = [0.1, 47.6063, -122.02, 1e308, -1e308, Number.MIN_VALUE, -0, NaN, Infinity, 16_777_217];

function leafOf(type: DataType): DataType {
  let current = type;
  while (current.typeId === Type.FixedSizeList || current.typeId === Type.List)
    current = (current.children[0] as Field).type as DataType;
  return current;
}

function isFloat32(type: DataType): boolean {
  const leaf = leafOf(type);
  return leaf.typeId === Type.Float && (leaf as Float).precision === Precision.SINGLE;
}

function isFloat64(type: DataType): boolean {
  const leaf = leafOf(type);
  return leaf.typeId === Type.Float && (leaf as Float).precision === Precision.DOUBLE;
}

/** A column's leaf values across the table's batches (its rows' elements, row after row). */
function leafValues(table: Table, name: string): number[] {
  const out: number[] = [];
  for (const batch of table.batches) {
    let data = batch.getChild(name)!.data[0]!;
    let from = data.offset;
    let to = data.offset + data.length;
    while (data.children.length > 0) {
      const size = (data.type as FixedSizeList).listSize;
      from *= size;
      to *= size;
      data = data.children[0]!;
    }
    out.push(...Array.from((data.values as Float32Array | Float64Array).subarray(from, to)));
  }
  return out;
}

function variable(rows: number): WireTensor {
  return {
    name: 'variable',
    type: 'float32',
    dims: [rows, 1],
    data: Float32Array.from({ length: rows }, (_, i) => i),
  };
}

function recordsResult(rows: number, logFloat32: readonly boolean[] | null): InferenceResult {
  const records = Array.from({ length: rows }, (_, i) => ({
    tensor: AWKWARD.map((v, j) => (j === 0 ? v + i : v)),
  }));
  return new InferenceResult(
    { kind: 'records', records },
    ['tensor'],
    [variable(rows)],
    rows,
    TIME,
    null,
    null,
    null,
    logFloat32,
  );
}

/** Writes a source's leaves into fresh arrays of their kinds, as the staging would. */
function stagedValues(source: LogRowSource, leaf: number): number[] {
  const staging = new LogStaging({ maxRows: 100_000, maxBytes: 64 * 1024 * 1024 });
  staging.add(1, admitLogRows(1, source).batches);
  const run = [...staging.take().groups.get(1)!][0] as StagedRun;
  const { buf, used } = run.leaves[leaf]!;
  const bytes = buf.slice(0, used);
  return Array.from(
    run.leaves[leaf]!.kind === kindOf(new Float32Array(0))
      ? new Float32Array(bytes.buffer, bytes.byteOffset, used / 4)
      : new Float64Array(bytes.buffer, bytes.byteOffset, used / 8),
  );
}

describe('narrowToFloat32', () => {
  it('makes a Float64 leaf Float32 through fixed-size lists and lists, keeping sizes, names and nullability', () => {
    expect(narrowToFloat32(new Float64())).toBeInstanceOf(Float32);
    const fixed = new FixedSizeList(
      3,
      new Field('v', new FixedSizeList(2, new Field('item', new Float64(), true)), false),
    );
    const narrowed = narrowToFloat32(fixed) as FixedSizeList;
    expect(narrowed.listSize).toBe(3);
    expect(narrowed.children[0]!.name).toBe('v');
    expect(narrowed.children[0]!.nullable).toBe(false);
    const inner = narrowed.children[0]!.type as FixedSizeList;
    expect(inner.listSize).toBe(2);
    expect(inner.children[0]!.nullable).toBe(true);
    expect(isFloat32(narrowed)).toBe(true);
    const list = narrowToFloat32(new List(new Field('item', new Float64(), false)));
    expect(list?.typeId).toBe(Type.List);
    expect(isFloat32(list!)).toBe(true);
  });

  it('leaves every other type alone (null)', () => {
    expect(narrowToFloat32(new Float32())).toBeNull();
    expect(narrowToFloat32(new Int32())).toBeNull();
    expect(narrowToFloat32(new FixedSizeList(2, new Field('item', new Int32(), false)))).toBeNull();
  });
});

describe('narrowDataToFloat32', () => {
  it('rounds the values as a Float32Array assignment does and keeps offset, nulls and list levels', () => {
    const values = Float64Array.from({ length: 12 }, (_, i) => AWKWARD[i % AWKWARD.length]! + i / 3);
    const leaf = makeData({ type: new Float64(), length: 12, data: values });
    const type = new FixedSizeList(3, new Field('item', new Float64(), false));
    const lists = makeData({ type, length: 4, child: leaf, nullBitmap: Uint8Array.of(0b1011) });
    const sliced = lists.slice(1, 2); // offset 1, 2 rows
    const out = narrowDataToFloat32(sliced, narrowToFloat32(type)!);
    expect(out.offset).toBe(sliced.offset);
    expect(out.length).toBe(2);
    expect(out.nullCount).toBe(sliced.nullCount);
    expect(out.nullBitmap).toBe(sliced.nullBitmap);
    // A slice's child holds its rows' values (Arrow slices the child's values buffer).
    const child = out.children[0] as Data;
    expect(child.values).toBeInstanceOf(Float32Array);
    expect(Array.from(child.values as Float32Array)).toEqual(
      Array.from(Float32Array.from(values.subarray(3, 9))),
    );
  });
});

describe('InferenceResult with a column that fed a float32 model input', () => {
  it('logs JSON records as Float32, the values the model received, while the answer keeps them as sent', () => {
    const result = recordsResult(3, [true]);
    const rows = result.logRows();
    expect(isLogRowSource(rows)).toBe(true);
    const source = rows as LogRowSource;
    expect(isFloat32(source.schema.fields[1]!.type as DataType)).toBe(true);
    expect(source.byteLength).toBe(3 * (8 + AWKWARD.length * 4 + 4 + 4));
    const sent = [0, 1, 2].flatMap((i) => AWKWARD.map((v, j) => (j === 0 ? v + i : v)));
    expect(stagedValues(source, 1)).toEqual(sent.map((v) => Math.fround(v)));
    expect(leafValues(result.toLogTable(), 'in.tensor')).toEqual(sent.map((v) => Math.fround(v)));
    // The answer: Float64, the numbers as they came.
    const answer = result.toArrowTable();
    expect(isFloat64(answer.schema.fields[1]!.type as DataType)).toBe(true);
    expect(leafValues(answer, 'in.tensor')).toEqual(sent);
    expect(result.toRecords()[0]!['in.tensor']).toEqual(sent.slice(0, AWKWARD.length));
  });

  it('gives every result of one pipeline the same log schema object, and the unflagged results their own', () => {
    const flags = [true];
    const a = recordsResult(2, flags).logRows() as LogRowSource;
    const b = recordsResult(5, [true]).logRows() as LogRowSource;
    const plain = recordsResult(2, null).logRows() as LogRowSource;
    expect(b.schema).toBe(a.schema);
    expect(plain.schema).not.toBe(a.schema);
    expect(isFloat64(plain.schema.fields[1]!.type as DataType)).toBe(true);
    expect(recordsResult(2, [false]).logRows()).toMatchObject({ schema: plain.schema });
  });

  it('keeps one log schema object per flags when pipelines sharing a result layout ask by turns', () => {
    // Two pipelines whose results have the same columns and outputs (so the same result layout),
    // one model taking "a" as float32, the other "b": each must find its log schema again, not
    // get a new one per request (the writer's and the staging's per-schema work keys by object).
    const make = (flags: readonly boolean[]): LogRowSource =>
      new InferenceResult(
        { kind: 'records', records: [{ a: [0.1, 0.2], b: [0.3, 0.4] }] },
        ['a', 'b'],
        [variable(1)],
        1,
        TIME,
        null,
        null,
        null,
        flags,
      ).logRows() as LogRowSource;
    const first = make([true, false]);
    const second = make([false, true]);
    expect(second.schema).not.toBe(first.schema);
    for (let k = 0; k < 3; k++) {
      expect(make([true, false]).schema).toBe(first.schema);
      expect(make([false, true]).schema).toBe(second.schema);
    }
    expect(isFloat32(first.schema.fields[1]!.type as DataType)).toBe(true);
    expect(isFloat64(first.schema.fields[2]!.type as DataType)).toBe(true);
    expect(isFloat64(second.schema.fields[1]!.type as DataType)).toBe(true);
    expect(isFloat32(second.schema.fields[2]!.type as DataType)).toBe(true);
  });

  it('logs the narrowed table once an Arrow answer built the result table', () => {
    const result = recordsResult(4, [true]);
    const answer = result.toArrowTable();
    const logged = result.logRows();
    expect(logged).toBeInstanceOf(Table);
    expect(logged).not.toBe(answer);
    expect((logged as Table).schema).toBe(result.toLogTable().schema);
    expect(isFloat32((logged as Table).schema.fields[1]!.type as DataType)).toBe(true);
    expect(leafValues(logged as Table, 'in.tensor')).toEqual(
      leafValues(answer, 'in.tensor').map((v) => Math.fround(v)),
    );
    expect(leafValues(logged as Table, 'out.variable')).toEqual(leafValues(answer, 'out.variable'));
  });

  it('logs a Float64 Arrow column (JSON records decoded by a worker) as Float32, and a Float32 one as it is', () => {
    const rows = 50;
    const values = Float64Array.from({ length: rows * 4 }, (_, i) => i / 3 + 0.1);
    const column = vectorFromArray(
      Array.from({ length: rows }, (_, i) => Array.from(values.subarray(i * 4, i * 4 + 4))),
      new FixedSizeList(4, new Field('item', new Float64(), false)),
    );
    const table = new Table({ tensor: column });
    const result = new InferenceResult(
      { kind: 'arrow', table },
      ['tensor'],
      [variable(rows)],
      rows,
      TIME,
      null,
      null,
      null,
      [true],
    );
    const source = result.logRows() as LogRowSource;
    expect(isLogRowSource(source)).toBe(true);
    expect(isFloat32(source.schema.fields[1]!.type as DataType)).toBe(true);
    expect(stagedValues(source, 1)).toEqual(Array.from(Float32Array.from(values)));
    // Big (32 KiB or more): the table is logged, narrowed.
    const bigRows = 2000;
    const bigColumn = vectorFromArray(
      Array.from({ length: bigRows }, (_, i) => [i + 0.1, i + 0.2, i + 0.3, i + 0.4]),
      new FixedSizeList(4, new Field('item', new Float64(), false)),
    );
    const big = new InferenceResult(
      { kind: 'arrow', table: new Table({ tensor: bigColumn }) },
      ['tensor'],
      [variable(bigRows)],
      bigRows,
      TIME,
      null,
      null,
      null,
      [true],
    );
    const logged = big.logRows();
    expect(logged).toBeInstanceOf(Table);
    expect((logged as Table).schema).toBe(source.schema);
    expect(leafValues(logged as Table, 'in.tensor').slice(0, 4)).toEqual(
      [0.1, 0.2, 0.3, 0.4].map((v) => Math.fround(v)),
    );
    // A Float32 column is logged as it is: the same schema as without the flag.
    const f32 = new Table({
      tensor: vectorFromArray(
        Array.from({ length: 3 }, () => [1, 2, 3, 4]),
        new FixedSizeList(4, new Field('item', new Float32(), false)),
      ),
    });
    const flagged = new InferenceResult(
      { kind: 'arrow', table: f32 },
      ['tensor'],
      [variable(3)],
      3,
      TIME,
      null,
      null,
      null,
      [true],
    );
    const unflagged = new InferenceResult({ kind: 'arrow', table: f32 }, ['tensor'], [variable(3)], 3, TIME);
    expect((flagged.logRows() as LogRowSource).schema).toBe((unflagged.logRows() as LogRowSource).schema);
  });

  it('logs a FP64 tensor (Open Inference Protocol) that fed a float32 input as Float32', () => {
    const values = Float64Array.from({ length: 10 * 18 }, (_, i) => i / 7);
    const result = new InferenceResult(
      { kind: 'tensors', tensors: [{ name: 'tensor', shape: [10, 18], values }], rows: 10 },
      ['tensor'],
      [variable(10)],
      10,
      TIME,
      null,
      null,
      null,
      [true],
    );
    const source = result.logRows() as LogRowSource;
    expect(isFloat32(source.schema.fields[1]!.type as DataType)).toBe(true);
    expect(stagedValues(source, 1)).toEqual(Array.from(Float32Array.from(values)));
    expect(isFloat64(result.toArrowTable().schema.fields[1]!.type as DataType)).toBe(true);
  });
});
