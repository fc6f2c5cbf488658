import { describe, expect, it } from 'vitest';
import {
  Field,
  FixedSizeList,
  Float32,
  Float64,
  List,
  RecordBatch,
  Table,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
} from 'apache-arrow';
import { makeArrowTensorTable } from '../../../../test/support/synthetic-data.js';
import {
  ARROW_SLICE_ROWS,
  ARROW_SLICE_VALUES,
  encodeInferenceAnswer,
  InferenceResult,
  JSON_SLICE_ROWS,
  JSON_SLICE_VALUES,
} from './inference-result.js';
import type { WireTensor } from './tensor-data.js';

const rows = Array.from({ length: 5 }, (_, i) => Array.from({ length: 3 }, (_, j) => i * 10 + j + 0.25));
const outputs: WireTensor[] = [
  { name: 'y', type: 'float32', dims: [5, 1], data: new Float32Array([1, 2, 3, 4, 5]) },
];

describe('InferenceResult.toRecords', () => {
  it('reads a tensor column the same straight from its values as row by row, for records and Arrow inputs', () => {
    const records = rows.map((tensor) => ({ tensor }));
    const fromRecords = new InferenceResult(
      { kind: 'records', records },
      ['tensor'],
      outputs,
      5,
      7,
    ).toRecords();
    const f64 = new Table({
      tensor: vectorFromArray(rows, new FixedSizeList(3, new Field('item', new Float64(), false))),
    });
    const fromArrow = new InferenceResult(
      { kind: 'arrow', table: f64 },
      ['tensor'],
      outputs,
      5,
      7,
    ).toRecords();
    expect(fromArrow).toEqual(fromRecords);
    expect(JSON.stringify(fromArrow)).toBe(JSON.stringify(fromRecords));
    // Float32 values, several chunks, and a List column (row by row) give the same numbers.
    const f32 = makeArrowTensorTable(Float32Array.from(rows.flat()), 3);
    const chunked = new Table([...f32.slice(0, 2).batches, ...f32.slice(2).batches]);
    const lists = new Table({
      tensor: vectorFromArray(rows, new List(new Field('item', new Float32(), false))),
    });
    const expected = rows.map((row) => Array.from(Float32Array.from(row)));
    for (const table of [f32, chunked, lists]) {
      const got = new InferenceResult({ kind: 'arrow', table }, ['tensor'], outputs, 5, 7).toRecords();
      expect(got.map((record) => record['in.tensor'])).toEqual(expected);
      expect(got.map((record) => record['out.y'])).toEqual([[1], [2], [3], [4], [5]]);
    }
  });
});

/** Arrow values as plain JSON-able values (lists as arrays, bigints as strings). */
function plain(value: unknown): unknown {
  if (typeof value === 'bigint') return String(value);
  if (value !== null && typeof value === 'object' && Symbol.iterator in value)
    return Array.from(value as Iterable<unknown>, plain);
  return value;
}

describe('InferenceResult.toArrowTable', () => {
  it("builds batches that are what Arrow's own constructor makes of the same schema and data (guards an apache-arrow upgrade)", () => {
    const records = rows.map((tensor) => ({ tensor }));
    const f32 = makeArrowTensorTable(Float32Array.from(rows.flat()), 3);
    const chunked = new Table([...f32.slice(0, 2).batches, ...f32.slice(2).batches]);
    for (const input of [
      { kind: 'records' as const, records },
      { kind: 'arrow' as const, table: f32 },
      { kind: 'arrow' as const, table: chunked },
    ]) {
      const table = new InferenceResult(input, ['tensor'], outputs, 5, 7).toArrowTable();
      // The same batches through Arrow's constructor (which clones the schema and rebuilds the struct).
      const constructed = table.batches.map((batch) => new RecordBatch(batch.schema, batch.data));
      for (const [i, batch] of table.batches.entries()) {
        const reference = constructed[i]!;
        // Our batches set exactly the own fields Arrow's constructor sets: a new field in a later
        // apache-arrow release fails here instead of being missing from every result batch.
        expect(Object.keys(batch).sort()).toEqual(Object.keys(reference).sort());
        expect(Object.getPrototypeOf(batch)).toBe(RecordBatch.prototype);
        expect(batch instanceof RecordBatch).toBe(true);
        expect(batch.schema).toBe(table.schema);
        expect(batch.numRows).toBe(reference.numRows);
        expect(batch.numCols).toBe(reference.numCols);
        expect(batch.metadata).toEqual(reference.metadata);
        for (const field of table.schema.fields)
          expect(plain(batch.getChild(field.name))).toEqual(plain(reference.getChild(field.name)));
      }
      const viaConstructor = new Table(constructed);
      expect(table.numRows).toBe(5);
      expect(plain(table.getChild('in.tensor'))).toEqual(rows);
      for (const format of ['stream', 'file'] as const)
        expect(Buffer.from(tableToIPC(table, format))).toEqual(
          Buffer.from(tableToIPC(viaConstructor, format)),
        );
    }
  });
});

describe('InferenceResult.toArrowTable tables and layouts', () => {
  it("makes tables with the own fields and offsets of Arrow's own constructor (guards an apache-arrow upgrade)", () => {
    const f32 = makeArrowTensorTable(Float32Array.from(rows.flat()), 3);
    const chunked = new Table([...f32.slice(0, 2).batches, ...f32.slice(2).batches]);
    for (const input of [
      { kind: 'records' as const, records: rows.map((tensor) => ({ tensor })) },
      { kind: 'arrow' as const, table: f32 },
      { kind: 'arrow' as const, table: chunked },
    ]) {
      const table = new InferenceResult(input, ['tensor'], outputs, 5, 7).toArrowTable();
      const reference = new Table(table.schema, table.batches);
      expect(Object.keys(table).sort()).toEqual(Object.keys(reference).sort());
      expect(Object.getPrototypeOf(table)).toBe(Table.prototype);
      expect(Table.isTable(table)).toBe(true);
      const offsets = (t: Table): number[] => [...(t as unknown as { _offsets: Uint32Array })._offsets];
      expect(offsets(table)).toEqual(offsets(reference));
      expect(table.numRows).toBe(5);
      for (const format of ['stream', 'file'] as const)
        expect(Buffer.from(tableToIPC(table, format))).toEqual(Buffer.from(tableToIPC(reference, format)));
      expect(plain(table.slice(2, 4).getChild('in.tensor'))).toEqual(rows.slice(2, 4));
      expect(plain(table.getChild('out.y'))).toEqual(plain(reference.getChild('out.y')));
    }
  });

  it('gives results of one input layout the schema of their outputs, whichever came last', () => {
    const input = { kind: 'arrow' as const, table: makeArrowTensorTable(Float32Array.from(rows.flat()), 3) };
    const y1: WireTensor[] = outputs;
    const y2: WireTensor[] = [{ name: 'y', type: 'float32', dims: [5, 2], data: new Float32Array(10) }];
    const y64: WireTensor[] = [{ name: 'y', type: 'float64', dims: [5, 1], data: new Float64Array(5) }];
    const z: WireTensor[] = [{ name: 'z', type: 'float32', dims: [5, 1], data: new Float32Array(5) }];
    const schemaOf = (outs: WireTensor[]) =>
      new InferenceResult(input, ['tensor'], outs, 5, 7).toArrowTable().schema;
    const first = schemaOf(y1);
    expect(schemaOf(y1)).toBe(first);
    const wide = schemaOf(y2);
    expect(wide).not.toBe(first);
    expect(String(wide.fields[2]!.type)).toBe('FixedSizeList[2]<Float32>');
    expect(schemaOf(y1)).toBe(first);
    const doubles = schemaOf(y64);
    expect(String(doubles.fields[2]!.type)).toBe('FixedSizeList[1]<Float64>');
    const named = schemaOf(z);
    expect(named.fields[2]!.name).toBe('out.z');
    expect(schemaOf(y2)).toBe(wide);
    expect(schemaOf(z)).toBe(named);
    expect(schemaOf(y1)).toBe(first);
  });
});

describe('InferenceResult layouts of records results', () => {
  const records = (width: number, column = 'tensor'): Record<string, unknown>[] => [
    { [column]: Array.from({ length: width }, (_, i) => i + 0.5) },
  ];
  const result = (input: Record<string, unknown>[], column: string, out: WireTensor[]): InferenceResult =>
    new InferenceResult({ kind: 'records', records: input }, [column], out, 1, 1_764_800_000_000);
  const output = (name: string, type: 'float32' | 'float64', dims: number[]): WireTensor => ({
    name,
    type,
    dims,
    data:
      type === 'float32'
        ? new Float32Array(dims.reduce((a, b) => a * b, 1))
        : new Float64Array(dims.reduce((a, b) => a * b, 1)),
  });
  const schemaOf = (r: InferenceResult): unknown => r.toArrowTable().schema;

  it('shares one schema object between results of equal columns, shapes and outputs, and none between any that differ', () => {
    const base = (): InferenceResult =>
      result(records(18), 'tensor', [output('variable', 'float32', [1, 1])]);
    const first = schemaOf(base());
    // Each of these differs from `base` in one part of the layout's key: its column, its shape,
    // an output's name, element type or dimensions, or the outputs' count.
    const others = [
      result(records(18, 'other'), 'other', [output('variable', 'float32', [1, 1])]),
      result(records(17), 'tensor', [output('variable', 'float32', [1, 1])]),
      result(records(18), 'tensor', [output('label', 'float32', [1, 1])]),
      result(records(18), 'tensor', [output('variable', 'float64', [1, 1])]),
      result(records(18), 'tensor', [output('variable', 'float32', [1, 2])]),
      result(records(18), 'tensor', [output('variable', 'float32', [1])]),
      result(records(18), 'tensor', [output('variable', 'float32', [1, 1]), output('p', 'float32', [1, 2])]),
    ];
    for (const other of others) {
      // Right after `base` (the layout it would reuse) and again after itself.
      expect(schemaOf(base())).toBe(first);
      const schema = schemaOf(other);
      expect(schema).not.toBe(first);
      expect(schemaOf(other)).toBe(schema);
      expect(String((schema as Table['schema']).fields.map(String))).toBe(
        String(other.toArrowTable().schema.fields.map(String)),
      );
    }
    expect(schemaOf(base())).toBe(first);
    // The log rows of a records result name the same schema as its table.
    const again = base();
    expect((again.logRows() as { schema: unknown }).schema).toBe(first);
  });
});

describe('encodeInferenceAnswer', () => {
  // Rows over both slice sizes, not a multiple of either, with a second output of another type.
  const n = ARROW_SLICE_ROWS + JSON_SLICE_ROWS + 17;
  const values = new Float32Array(n * 3);
  for (let i = 0; i < values.length; i++) values[i] = (i % 1000) / 8 - 40;
  const big = (): InferenceResult =>
    new InferenceResult(
      { kind: 'arrow', table: makeArrowTensorTable(values, 3) },
      ['tensor'],
      [
        { name: 'y', type: 'float32', dims: [n, 1], data: values.subarray(0, n) },
        {
          name: 'k',
          type: 'int64',
          dims: [n],
          data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i - 5)),
        },
      ],
      n,
      1_764_800_000_123,
    );

  it('writes a large JSON answer in slices, byte for byte what one JSON.stringify of its records gives', async () => {
    const result = big();
    const answer = await encodeInferenceAnswer(result, 'json');
    expect(answer.contentType).toBe('application/json');
    expect(Array.isArray(answer.body)).toBe(true);
    const parts = answer.body as readonly Uint8Array[];
    expect(parts.length).toBeGreaterThan(n / JSON_SLICE_ROWS);
    expect(Buffer.concat(parts).toString('utf8')).toBe(JSON.stringify(result.toRecords()));
    // A small answer is still one string, as before.
    const small = await encodeInferenceAnswer(
      new InferenceResult(
        { kind: 'records', records: rows.map((tensor) => ({ tensor })) },
        ['tensor'],
        outputs,
        5,
        7,
      ),
      'json',
    );
    expect(typeof small.body).toBe('string');
  });

  it('slices a JSON answer of wide rows by its values, not only by its rows', async () => {
    // 300 rows of 4096 input and 4096 output values: far under JSON_SLICE_ROWS rows, but 2.5 M
    // values, which one JSON.stringify wrote in one go (a model 4096 wide held /v1/health for
    // 2.3 s with 4000 such rows).
    const width = 4096;
    const rowCount = 300;
    const wide = new Float32Array(rowCount * width);
    for (let i = 0; i < wide.length; i++) wide[i] = (i % 613) / 4;
    for (const input of ['arrow', 'records'] as const) {
      const table = makeArrowTensorTable(wide, width);
      const result = new InferenceResult(
        input === 'arrow'
          ? { kind: 'arrow', table }
          : {
              kind: 'records',
              records: Array.from({ length: rowCount }, (_, row) => ({
                tensor: Array.from(wide.subarray(row * width, (row + 1) * width)),
              })),
            },
        ['tensor'],
        [{ name: 'y', type: 'float32', dims: [rowCount, width], data: wide }],
        rowCount,
        7,
      );
      const answer = await encodeInferenceAnswer(result, 'json');
      expect(Array.isArray(answer.body), input).toBe(true);
      const parts = answer.body as readonly Uint8Array[];
      // `[`, the slices, `]`: no slice holds more than JSON_SLICE_VALUES values.
      const valuesPerRow = 2 + 2 * width;
      expect(parts.length - 2, input).toBeGreaterThanOrEqual((rowCount * valuesPerRow) / JSON_SLICE_VALUES);
      expect(Buffer.concat(parts).toString('utf8'), input).toBe(JSON.stringify(result.toRecords()));
    }
  });

  it('slices an Arrow answer of wide rows by its values too', async () => {
    // 600 rows of 4096 input and 4096 output values (4.9 M values, 29 MB of IPC) were one
    // tableToIPC: 4000 such rows (197 MB) held the HTTP thread 0.7 s at load 11.
    const width = 4096;
    const rowCount = 600;
    const wide = new Float32Array(rowCount * width);
    for (let i = 0; i < wide.length; i++) wide[i] = (i % 613) / 4;
    const result = new InferenceResult(
      { kind: 'arrow', table: makeArrowTensorTable(wide, width) },
      ['tensor'],
      [{ name: 'y', type: 'float32', dims: [rowCount, width], data: wide }],
      rowCount,
      7,
    );
    const sliceRows = Math.floor(ARROW_SLICE_VALUES / (2 + 2 * width));
    for (const format of ['arrow-file', 'arrow-stream'] as const) {
      const answer = await encodeInferenceAnswer(result, format);
      expect(Array.isArray(answer.body), format).toBe(true);
      const got = tableFromIPC(Buffer.concat(answer.body as readonly Uint8Array[]));
      expect(got.numRows, format).toBe(rowCount);
      expect(
        got.batches.every((batch) => batch.numRows <= sliceRows),
        format,
      ).toBe(true);
      for (const row of [0, sliceRows - 1, sliceRows, rowCount - 1]) {
        expect(JSON.stringify(got.get(row)), `${format} ${row}`).toBe(
          JSON.stringify(result.toArrowTable().get(row)),
        );
      }
    }
  });

  it('writes a large Arrow answer as batches of at most ARROW_SLICE_ROWS rows, the same table', async () => {
    for (const format of ['arrow-file', 'arrow-stream'] as const) {
      const result = big();
      const answer = await encodeInferenceAnswer(result, format);
      expect(Array.isArray(answer.body), format).toBe(true);
      const got = tableFromIPC(Buffer.concat(answer.body as readonly Uint8Array[]));
      const whole = tableFromIPC(
        tableToIPC(result.toArrowTable(), format === 'arrow-file' ? 'file' : 'stream'),
      );
      expect(got.numRows, format).toBe(n);
      expect(
        got.batches.every((batch) => batch.numRows <= ARROW_SLICE_ROWS),
        format,
      ).toBe(true);
      expect(got.schema.fields.map(String), format).toEqual(whole.schema.fields.map(String));
      // Every 97th row, and the rows either side of each slice's edge.
      const sample = Array.from({ length: n }, (_, row) => row).filter(
        (row) => row % 97 === 0 || (row + 1) % ARROW_SLICE_ROWS <= 2 || row === n - 1,
      );
      const rowsOf = (table: Table): string[] => sample.map((row) => JSON.stringify(table.get(row), bigints));
      expect(rowsOf(got), format).toEqual(rowsOf(whole));
    }
  });
});

function bigints(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
