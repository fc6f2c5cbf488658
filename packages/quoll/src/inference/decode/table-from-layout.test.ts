import { describe, expect, it } from 'vitest';
import {
  Field,
  Float32,
  Int32,
  Int64,
  List,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
} from 'apache-arrow';
import { makeArrowTensorTable, makeHouseRows } from '../../../../../test/support/synthetic-data.js';
import { readArrowIpcLayout } from './check-arrow-ipc.js';
import { tableFromLayout } from './table-from-layout.js';

/** Every column as plain nested arrays (bigints as strings). */
function plain(table: Table): unknown[] {
  return table.schema.fields.map((field) =>
    Array.from({ length: table.numRows }, (_, i) => {
      const value = table.getChild(field.name)!.get(i) as unknown;
      const out =
        value !== null && typeof value === 'object' && 'toArray' in value
          ? Array.from((value as { toArray(): ArrayLike<unknown> }).toArray())
          : value;
      return JSON.parse(
        JSON.stringify(out, (_key, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
      ) as unknown;
    }),
  );
}

function viaLayout(body: Uint8Array): Table {
  return tableFromLayout(body, readArrowIpcLayout(body));
}

describe('tableFromLayout', () => {
  const tensors = makeArrowTensorTable(makeHouseRows(50, 3), 18);
  const lists = vectorFromArray(
    Array.from({ length: 50 }, (_, i) =>
      i % 5 === 4 ? null : Array.from({ length: i % 4 }, (_, j) => i + j),
    ),
    new List(new Field('item', new Int32(), true)),
  );
  // Top-level number columns with nulls: built by the Int / Float branch with a bitmap.
  const floats = vectorFromArray(
    Array.from({ length: 50 }, (_, i) => (i % 3 === 1 ? null : i / 4)),
    new Float32(),
  );
  const longs = vectorFromArray(
    Array.from({ length: 50 }, (_, i) => (i % 7 === 2 ? null : BigInt(i) * 1_000_000_007n - 3n)),
    new Int64(),
  );
  const schema = new Schema([
    tensors.schema.fields[0]!,
    new Field('ragged', lists.type, true),
    new Field('f32', floats.type, true),
    new Field('i64', longs.type, true),
  ]);
  const mixed = new Table(
    schema,
    new RecordBatch(
      schema,
      makeData({
        type: new Struct(schema.fields),
        length: 50,
        nullCount: 0,
        children: [tensors.batches[0]!.data.children[0]!, lists.data[0]!, floats.data[0]!, longs.data[0]!],
      }),
    ),
  );
  const twoBatches = new Table([
    ...tensors.batches,
    ...makeArrowTensorTable(makeHouseRows(7, 4), 18).batches,
  ]);

  it('builds the table apache-arrow reads, for files and streams, lists with nulls and several batches', () => {
    for (const table of [tensors, mixed, twoBatches]) {
      for (const layout of ['file', 'stream'] as const) {
        const body = tableToIPC(table, layout);
        const built = viaLayout(body);
        const read = tableFromIPC(body);
        expect(built.numRows, layout).toBe(read.numRows);
        expect(built.batches.length, layout).toBe(read.batches.length);
        expect(String(built.schema), layout).toBe(String(read.schema));
        expect(plain(built), layout).toEqual(plain(read));
      }
    }
  });

  it('copies buffers that are not aligned for their type instead of failing', () => {
    const body = tableToIPC(mixed, 'stream');
    const shifted = new Uint8Array(body.byteLength + 1).subarray(1);
    shifted.set(body);
    expect(plain(viaLayout(shifted))).toEqual(plain(tableFromIPC(body)));
  });

  it('shares one schema object between tables with the same fields', () => {
    const a = viaLayout(tableToIPC(tensors, 'file'));
    const b = viaLayout(tableToIPC(makeArrowTensorTable(makeHouseRows(2, 9), 18), 'stream'));
    expect(a.schema).toBe(b.schema);
  });

  it('gives every batch the schema of its table and the struct type of that schema (no per-request copies)', () => {
    for (const table of [tensors, mixed, twoBatches]) {
      const built = viaLayout(tableToIPC(table, 'file'));
      for (const batch of built.batches) {
        expect(batch).toBeInstanceOf(RecordBatch);
        expect(batch.schema).toBe(built.schema);
        expect(batch.data.type.children).toBe(built.schema.fields);
        expect(batch.numRows).toBe(batch.data.children[0]!.length);
      }
      expect(plain(built)).toEqual(plain(tableFromIPC(tableToIPC(table, 'file'))));
    }
  });

  it('builds each column as makeData would: a bitmap (empty when no nulls), its stride, offsets and values', () => {
    type Node = Table['batches'][number]['data'];
    const same = (built: Node, made: Node): void => {
      expect(String(built.type)).toBe(String(made.type));
      expect([built.offset, built.length, built.nullCount, built.stride]).toEqual([
        made.offset,
        made.length,
        made.nullCount,
        made.stride,
      ]);
      expect(built.nullBitmap).toBeInstanceOf(Uint8Array);
      // The bitmap's bytes that hold bits (a writer may pad it further).
      const bits = made.nullCount > 0 ? Math.ceil(made.length / 8) : 0;
      expect(Array.from(built.nullBitmap ?? []).slice(0, bits)).toEqual(
        Array.from(made.nullBitmap ?? []).slice(0, bits),
      );
      expect(built.values?.constructor).toBe(made.values?.constructor);
      // Their elements that hold values (a writer may pad a buffer further).
      const count = made.values ? made.length * made.stride : 0;
      expect(Array.from((built.values ?? []) as unknown as ArrayLike<number>).slice(0, count)).toEqual(
        Array.from((made.values ?? []) as unknown as ArrayLike<number>).slice(0, count),
      );
      const offsets = made.valueOffsets ? made.length + 1 : 0;
      expect(Array.from((built.valueOffsets ?? []) as ArrayLike<number>).slice(0, offsets)).toEqual(
        Array.from((made.valueOffsets ?? []) as ArrayLike<number>).slice(0, offsets),
      );
      expect(built.children.length).toBe(made.children.length);
      built.children.forEach((child, i) => same(child as Node, made.children[i] as Node));
    };
    for (const table of [tensors, mixed]) {
      const built = viaLayout(tableToIPC(table, 'stream'));
      same(built.batches[0]!.data, table.batches[0]!.data);
    }
    // The fixture does hold number columns with nulls.
    const numbers = mixed.batches[0]!.data.children.slice(2);
    expect(
      numbers.map((column) => [
        column.type instanceof Float32,
        column.type instanceof Int64,
        column.nullCount > 0,
      ]),
    ).toEqual([
      [true, false, true],
      [false, true, true],
    ]);
  });

  it('builds batches with the prototype and own fields of a constructed RecordBatch', () => {
    const built = viaLayout(tableToIPC(mixed, 'file')).batches[0]!;
    const constructed = new RecordBatch(mixed.schema, mixed.batches[0]!.data);
    expect(Object.getPrototypeOf(built)).toBe(RecordBatch.prototype);
    expect(Object.keys(built).sort()).toEqual(Object.keys(constructed).sort());
    expect(built.schema.metadata).toEqual(constructed.schema.metadata);
    expect(plain(new Table([built]))).toEqual(plain(new Table([constructed])));
  });

  it("refuses a layout whose column is not its batch's length (the checker lets none through)", () => {
    const body = tableToIPC(mixed, 'file');
    const layout = readArrowIpcLayout(body);
    const batch = layout.recordBatches[0]!;
    // The first column's node: [length, nullCount].
    const nodes = [batch.rows - 1, ...batch.nodes.slice(1)];
    expect(() =>
      tableFromLayout(body, { fields: layout.fields, recordBatches: [{ ...batch, nodes }] }),
    ).toThrow(/not its record batch's length/);
  });
});
