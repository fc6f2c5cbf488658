import { describe, expect, it } from 'vitest';
import {
  Bool,
  Field,
  FixedSizeList,
  Float16,
  Float32,
  Float64,
  Int32,
  Int64,
  Int8,
  List,
  makeData,
  Table,
  Uint16,
  Uint8,
  Vector,
  vectorFromArray,
} from 'apache-arrow';
import type { Data, DataType } from 'apache-arrow';
import type { TensorInfoDto } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import { makeArrowTensorTable, mulberry32 } from '../../../../test/support/synthetic-data.js';
import { recordsToTable } from './decode/records-to-table.js';
import { bindColumns, buildFeeds, buildFeedsFromRecordColumns } from './input-binding.js';
import type { ColumnBinding } from './input-binding.js';
import { ownedForMessage, transferList } from './tensor-data.js';
import { FeedSlab } from './feed-slab.js';
import type { WireTensor } from './tensor-data.js';
import type { InputTensor } from './inference-input.js';

const tensor18: TensorInfoDto = { name: 'float_input', type: 'float32', shape: [null, 18] };

function apiError(action: () => unknown): ApiError {
  try {
    action();
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected an ApiError');
}

describe('bindColumns', () => {
  const a: TensorInfoDto = { name: 'a', type: 'float32', shape: ['N', 3] };
  const b: TensorInfoDto = { name: 'b', type: 'float32', shape: ['N', 2] };

  it('binds the only column to the only input whatever their names', () => {
    expect(bindColumns(['tensor'], [tensor18], null)).toEqual([{ column: 'tensor', input: tensor18 }]);
  });

  it('binds tensorFields in input order, else by name', () => {
    expect(
      bindColumns(['y', 'x'], [a, b], ['x', 'y']).map(
        (binding) => `${binding.column}->${binding.input.name}`,
      ),
    ).toEqual(['x->a', 'y->b']);
    expect(
      bindColumns(['b', 'a'], [a, b], null).map((binding) => `${binding.column}->${binding.input.name}`),
    ).toEqual(['a->a', 'b->b']);
  });

  it('names the stray column and the unfed input', () => {
    expect(apiError(() => bindColumns(['a', 'z'], [a, b], null)).details).toMatchObject({ column: 'z' });
    expect(apiError(() => bindColumns(['a'], [a, b], null)).code).toBe('missing_model_input');
    expect(apiError(() => bindColumns(['tensor'], [tensor18], ['other'])).code).toBe('missing_model_input');
  });
});

describe('buildFeeds', () => {
  it('lends a FixedSizeList<Float32> column that fills its buffer as it is, as [rows, 18], never to be transferred', () => {
    const values = Float32Array.from({ length: 36 }, (_, i) => i);
    const table = makeArrowTensorTable(values, 18);
    const [feed] = buildFeeds({ kind: 'arrow', table }, [{ column: 'tensor', input: tensor18 }]);
    expect(feed!.dims).toEqual([2, 18]);
    expect(Array.from(feed!.data as Float32Array)).toEqual(Array.from(values));
    // The request's own values (no copy on this thread); a run copies them into its message
    // instead of moving their buffer, so the request's table stays readable.
    expect((feed!.data as Float32Array).buffer).toBe(values.buffer);
    expect(transferList([feed!])).toEqual([]);
    // A feed of the same shape in a buffer of its own is moved.
    const own: WireTensor = { ...feed!, data: values.slice() };
    expect(transferList([own])).toEqual([(own.data as Float32Array).buffer]);
  });

  it('copies a column that is a small part of a larger buffer into a buffer of its own', () => {
    const body = new Float32Array(36 * 4);
    body.set(
      Float32Array.from({ length: 36 }, (_, i) => i),
      36,
    );
    const table = makeArrowTensorTable(body.subarray(36, 72), 18);
    const [feed] = buildFeeds({ kind: 'arrow', table }, [{ column: 'tensor', input: tensor18 }]);
    expect(Array.from(feed!.data as Float32Array)).toEqual(Array.from(body.subarray(36, 72)));
    // Lending it would make the run's message carry the whole buffer.
    expect((feed!.data as Float32Array).buffer).not.toBe(body.buffer);
    expect(transferList([feed!])).toEqual([(feed!.data as Float32Array).buffer]);
  });

  it('casts a float column to a float64 input and a plain numeric column feeds a width-1 input', () => {
    const table = new Table({ x: vectorFromArray([1.5, 2.5]) });
    const [feed] = buildFeeds({ kind: 'arrow', table }, [
      { column: 'x', input: { name: 'x', type: 'int32', shape: ['N', 1] } },
    ]);
    expect(feed!.data).toEqual(Int32Array.from([1, 2]));
    expect(feed!.dims).toEqual([2, 1]);
  });

  it('reads a List column and checks every row width', () => {
    const input: TensorInfoDto = { name: 'x', type: 'float32', shape: [null, 2] };
    const type = new List(new Field('item', new Float64(), true));
    const good = new Table({
      x: vectorFromArray(
        [
          [1, 2],
          [3, 4],
        ],
        type,
      ),
    });
    expect(
      Array.from(
        buildFeeds({ kind: 'arrow', table: good }, [{ column: 'x', input }])[0]!.data as Float32Array,
      ),
    ).toEqual([1, 2, 3, 4]);
    const bad = new Table({
      x: vectorFromArray(
        [
          [1, 2],
          [3, 4, 5],
        ],
        type,
      ),
    });
    const error = apiError(() => buildFeeds({ kind: 'arrow', table: bad }, [{ column: 'x', input }]));
    expect(error.code).toBe('invalid_tensor_shape');
    expect(error.details).toMatchObject({ column: 'x', row: 1, expected: [2], got: [3] });
  });

  it('refuses a null row of an Arrow list column as non-numeric, naming the row', () => {
    const input: TensorInfoDto = { name: 'x', type: 'float32', shape: [null, 2] };
    const type = new List(new Field('item', new Float64(), true));
    const table = new Table({ x: vectorFromArray([[1, 2], null, [3, 4]], type) });
    const error = apiError(() => buildFeeds({ kind: 'arrow', table }, [{ column: 'x', input }]));
    expect(error.code).toBe('non_numeric_value');
    expect(error.details).toMatchObject({ column: 'x', row: 1 });
  });

  it('flattens nested JSON arrays for a 2-D input and checks their shape', () => {
    const input: TensorInfoDto = { name: 'm', type: 'float64', shape: ['N', 2, 3] };
    const [feed] = buildFeeds(
      {
        kind: 'records',
        records: [
          {
            m: [
              [1, 2, 3],
              [4, 5, 6],
            ],
          },
        ],
      },
      [{ column: 'm', input }],
    );
    expect(feed!.dims).toEqual([1, 2, 3]);
    expect(Array.from(feed!.data as Float64Array)).toEqual([1, 2, 3, 4, 5, 6]);
    const error = apiError(() =>
      buildFeeds(
        {
          kind: 'records',
          records: [
            {
              m: [
                [1, 2, 3],
                [4, 5, 6],
              ],
            },
            {
              m: [
                [1, 2],
                [3, 4],
              ],
            },
          ],
        },
        [{ column: 'm', input }],
      ),
    );
    expect(error.code).toBe('invalid_tensor_shape');
    expect(error.details).toMatchObject({ row: 1 });
  });

  it('refuses NaN into an int64 input and a record missing the column', () => {
    const input: TensorInfoDto = { name: 'x', type: 'int64', shape: ['N', 1] };
    expect(
      apiError(() =>
        buildFeeds({ kind: 'records', records: [{ x: [Number.NaN] }] }, [{ column: 'x', input }]),
      ).code,
    ).toBe('invalid_inference_input');
    const missing = apiError(() =>
      buildFeeds({ kind: 'records', records: [{ x: [1] }, {}] }, [{ column: 'x', input }]),
    );
    expect(missing.code).toBe('non_numeric_value');
    expect(missing.details).toMatchObject({ column: 'x', row: 1 });
  });
});

describe('strict numbers', () => {
  const records = (values: unknown[]): { kind: 'records'; records: unknown[] } => ({
    kind: 'records',
    records: values.map((x) => ({ x: [1, x] })),
  });
  const feed = (input: TensorInfoDto, values: unknown[]): unknown =>
    buildFeeds(records(values), [{ column: 'x', input }]);
  const f32: TensorInfoDto = { name: 'in', type: 'float32', shape: [null, 2] };

  it.each([
    ['a boolean', true, f32],
    ['Infinity (1e999 in JSON)', Infinity, f32],
    ['NaN', NaN, f32],
    ['a float32 overflow', 1e39, f32],
    ['an int8 overflow', 128, { name: 'in', type: 'int8', shape: [null, 2] }],
    ['a negative uint32', -1, { name: 'in', type: 'uint32', shape: [null, 2] }],
    ['an int32 overflow', 2 ** 31, { name: 'in', type: 'int32', shape: [null, 2] }],
    ['an int64 overflow', 2 ** 64, { name: 'in', type: 'int64', shape: [null, 2] }],
  ] as [string, unknown, TensorInfoDto][])(
    'refuses %s with invalid_inference_input naming the column and row',
    (_what, value, input) => {
      const error = apiError(() => feed(input, [0, value]));
      expect(error.code).toBe('invalid_inference_input');
      expect(error.message).toContain('Column "x" row 1');
      expect(error.details).toMatchObject({ column: 'x', row: 1 });
    },
  );

  it('accepts the edges of each range and truncates fractions into integer inputs', () => {
    expect(feed(f32, [3.4028234663852886e38, -3.4028234663852886e38])).toBeDefined();
    const ints = feed({ name: 'in', type: 'int8', shape: [null, 2] }, [127, -128.9]) as { data: Int8Array }[];
    expect(Array.from(ints[0]!.data)).toEqual([1, 127, 1, -128]);
  });

  it('refuses NaN and Infinity inside Arrow float columns, naming the row', () => {
    const values = new Float32Array(18 * 3).fill(1);
    values[18 * 2 + 5] = Infinity;
    const table = makeArrowTensorTable(values, 18);
    const error = apiError(() =>
      buildFeeds({ kind: 'arrow', table }, [{ column: 'tensor', input: tensor18 }]),
    );
    expect(error.code).toBe('invalid_inference_input');
    expect(error.details).toMatchObject({ column: 'tensor', row: 2 });
  });

  it('refuses Arrow float64 values a float32 input cannot hold', () => {
    const table = new Table({ v: vectorFromArray([1, 2, 1e300], new Float64()) });
    const input: TensorInfoDto = { name: 'in', type: 'float32', shape: [null] };
    const error = apiError(() => buildFeeds({ kind: 'arrow', table }, [{ column: 'v', input }]));
    expect(error.code).toBe('invalid_inference_input');
    expect(error.details).toMatchObject({ column: 'v', row: 2 });
    // Rows of 3 (what JSON records decoded in a worker become): the row of the value is named.
    const wide: TensorInfoDto = { name: 'in', type: 'float32', shape: [null, 3] };
    const type = new FixedSizeList(3, new Field('item', new Float64(), false));
    for (const bad of [NaN, -Infinity, -1e39]) {
      const rows = [
        [1, 2, 3],
        [4, 5, 6],
        [7, bad, 9],
      ];
      const fsl = new Table({ v: vectorFromArray(rows, type) });
      const refused = apiError(() =>
        buildFeeds({ kind: 'arrow', table: fsl }, [{ column: 'v', input: wide }]),
      );
      expect(refused.code).toBe('invalid_inference_input');
      expect(refused.details).toMatchObject({ column: 'v', row: 2 });
    }
    const ok = new Table({ v: vectorFromArray([[0.1, -2, 3.4028234663852886e38]], type) });
    const [fed] = buildFeeds({ kind: 'arrow', table: ok }, [{ column: 'v', input: wide }]);
    expect(Array.from(fed!.data as Float32Array)).toEqual([Math.fround(0.1), -2, 3.4028234663852886e38]);
  });

  it('refuses rows nested deeper than 32 levels instead of recursing', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const error = apiError(() =>
      buildFeeds({ kind: 'records', records: [{ x: deep }] }, [{ column: 'x', input: f32 }]),
    );
    expect(error.code).toBe('invalid_tensor_shape');
  });
});

describe('buildFeedsFromRecordColumns', () => {
  /** What a build gave: each feed's name, type, dims, array type and bytes, or the error's code, message and details. */
  function outcome(build: () => WireTensor[]): unknown {
    try {
      return build().map((feed) => {
        const data = feed.data as Exclude<WireTensor['data'], string[]>;
        return {
          name: feed.name,
          type: feed.type,
          dims: feed.dims,
          array: data.constructor.name,
          bytes: Array.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
        };
      });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return { code: error.code, message: error.message, details: error.details };
    }
  }

  // Values at and past the edges of every element type, fractions, -0, subnormals; and a few
  // that recordsToTable refuses before any feed is built.
  const numbers = [
    0,
    -0,
    1,
    -1,
    0.1,
    2.5,
    -128.9,
    127.9,
    128,
    255.5,
    256,
    32767,
    32768,
    -32769,
    65536,
    2 ** 31,
    -(2 ** 31) - 1,
    2 ** 32,
    2 ** 53 + 2,
    2 ** 63,
    2 ** 64,
    -(2 ** 63) - 4096,
    3.4028234663852886e38,
    -3.4028234663852886e38,
    3.5e38,
    -3.5e38,
    1e300,
    Number.MIN_VALUE,
    0.1 + 0.2,
  ];
  const refused = [true, null, '1', [1], {}];
  const types = [
    'float32',
    'float64',
    'int8',
    'int16',
    'int32',
    'int64',
    'uint8',
    'uint16',
    'uint32',
    'uint64',
    'bool',
    'float16',
    'string',
  ] as const;

  it('gives the feeds and the errors buildFeeds gives from the same records, over 6 000 generated requests', () => {
    const random = mulberry32(9);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const counts = { fed: 0, refusedByTable: 0, refusedByFeeds: 0 };
    for (let n = 0; n < 6000; n++) {
      const rows = 1 + Math.floor(random() * 5);
      // Row shape: a number, a flat list, or a 2-D list.
      const shape = pick([[], [1], [3], [4], [2, 2], [3, 1]] as number[][]);
      const value = (): unknown => {
        const leaf = (): unknown =>
          random() < 0.02 ? pick(refused) : random() < 0.5 ? pick([0, 1, 2.5, -7]) : pick(numbers);
        const build = (level: number): unknown =>
          level === shape.length ? leaf() : Array.from({ length: shape[level]! }, () => build(level + 1));
        const made = build(0);
        // Now and then a flat row of another length (a List column), or a row of another shape.
        if (Array.isArray(made) && random() < 0.08)
          return shape.length === 1 ? made.concat([1]) : made.slice(1);
        return made;
      };
      const columns = random() < 0.8 ? ['x'] : ['x', 'y'];
      const records = Array.from({ length: rows }, () =>
        Object.fromEntries(columns.map((column) => [column, value()])),
      );
      const bindings: ColumnBinding[] = columns.map((column) => {
        const width = shape.reduce((a, b) => a * b, 1);
        const declared = pick([
          [null, width],
          ['N', ...shape],
          [null, width + 1],
          [null],
          [],
          [null, 2, 2],
          [null, 'M'],
        ] as (number | string | null)[][]);
        return {
          column,
          input: { name: `in_${column}`, type: pick(types), shape: declared },
        };
      });
      let table;
      try {
        table = recordsToTable(records);
      } catch {
        counts.refusedByTable++;
        continue;
      }
      const expected = outcome(() => buildFeeds({ kind: 'records', records }, bindings));
      const got = outcome(() => buildFeedsFromRecordColumns(table, bindings));
      expect(got, JSON.stringify({ records, bindings })).toEqual(expected);
      if (Array.isArray(got)) counts.fed++;
      else counts.refusedByFeeds++;
    }
    // Every branch was taken often (the comparison is not between two refusals only).
    expect(counts.fed).toBeGreaterThan(500);
    expect(counts.refusedByFeeds).toBeGreaterThan(500);
    expect(counts.refusedByTable).toBeGreaterThan(200);
  });

  it('names the row of a List column whose length differs, and of a value the input cannot hold', () => {
    const input: TensorInfoDto = { name: 'in', type: 'float32', shape: [null, 2] };
    const lengths = recordsToTable([{ x: [1, 2] }, { x: [1, 2] }, { x: [1, 2, 3] }]);
    const shape = apiError(() => buildFeedsFromRecordColumns(lengths, [{ column: 'x', input }]));
    expect(shape.code).toBe('invalid_tensor_shape');
    expect(shape.details).toMatchObject({ column: 'x', row: 2, expected: [2], got: [3] });
    const overflow = recordsToTable([{ x: [1, 2] }, { x: [1, -1e39] }]);
    const range = apiError(() => buildFeedsFromRecordColumns(overflow, [{ column: 'x', input }]));
    expect(range.code).toBe('invalid_inference_input');
    expect(range.details).toMatchObject({ column: 'x', row: 1 });
  });

  it('builds its feed in a buffer of its own, not the echoed column', () => {
    const table = recordsToTable([{ x: [1.5, 2] }, { x: [3, 4] }]);
    const input: TensorInfoDto = { name: 'in', type: 'float64', shape: [null, 2] };
    const [feed] = buildFeedsFromRecordColumns(table, [{ column: 'x', input }]);
    const echoed = table.batches[0]![0]!.children[0]!.values as Float64Array;
    expect(Array.from(feed!.data as Float64Array)).toEqual([1.5, 2, 3, 4]);
    expect((feed!.data as Float64Array).buffer).not.toBe(echoed.buffer);
  });
});

describe("buildFeeds from tensors (the Open Inference codec's input)", () => {
  /** The Arrow column a tensor stands for: its values in one FixedSizeList per dimension after the first. */
  function columnOf(tensor: InputTensor): Vector {
    const values = tensor.values;
    const leafType: DataType =
      values instanceof Float32Array
        ? new Float32()
        : values instanceof Float64Array
          ? new Float64()
          : values instanceof BigInt64Array
            ? new Int64()
            : values instanceof Int32Array
              ? new Int32()
              : new Uint8();
    let data: Data = makeData({ type: leafType, length: values.length, data: values } as never);
    for (let level = tensor.shape.length - 1; level >= 1; level--) {
      const size = tensor.shape[level]!;
      const type = new FixedSizeList(size, new Field('item', data.type, false));
      data = makeData({ type, length: data.length / size, nullCount: 0, child: data });
    }
    return new Vector([data]);
  }

  /** What buildFeeds makes of the tensors, and of the Arrow table of their columns: feeds or the error. */
  function both(tensors: InputTensor[], bindings: ColumnBinding[]): [unknown, unknown] {
    const rows = tensors[0]!.shape[0]!;
    const table = new Table(Object.fromEntries(tensors.map((t) => [t.name, columnOf(t)])));
    const outcome = (build: () => WireTensor[]): unknown => {
      try {
        return build().map((feed) => ({
          name: feed.name,
          type: feed.type,
          dims: feed.dims,
          array: feed.data.constructor.name,
          data: Array.from(feed.data as ArrayLike<unknown>, (v) => String(v)),
          // Lent (a view of the request's own values, never moved) or a buffer of its own.
          lent: tensors.some((t) => t.values.buffer === (feed.data as Float32Array).buffer),
          transfers: transferList([feed]).length,
        }));
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        return { code: error.code, message: error.message, details: error.details };
      }
    };
    return [
      outcome(() => buildFeeds({ kind: 'tensors', tensors, rows }, bindings)),
      outcome(() => buildFeeds({ kind: 'arrow', table }, bindings)),
    ];
  }

  const fp32 = (shape: number[], at = -1, bad = 0): InputTensor => {
    const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i * 0.5 - 3);
    if (at >= 0) values[at] = bad;
    return { name: 'tensor', shape, values };
  };
  const input = (type: TensorInfoDto['type'], shape: TensorInfoDto['shape']): TensorInfoDto => ({
    name: 'x',
    type,
    shape,
  });

  it('gives the feeds and the errors the Arrow columns they stand for give', () => {
    const cases: [string, InputTensor[], ColumnBinding[]][] = [
      ['FP32 [2, 18] into float32 [N, 18] (lent)', [fp32([2, 18])], [{ column: 'tensor', input: tensor18 }]],
      [
        'FP64 [2, 18] into float32 (cast)',
        [{ name: 'tensor', shape: [2, 18], values: Float64Array.from({ length: 36 }, (_, i) => i / 7) }],
        [{ column: 'tensor', input: tensor18 }],
      ],
      [
        'FP32 [2, 2, 3] into float32 [N, 6]',
        [fp32([2, 2, 3])],
        [{ column: 'tensor', input: input('float32', [null, 6]) }],
      ],
      [
        'FP32 [2, 2, 3] into float32 [N, 2, 3]',
        [fp32([2, 2, 3])],
        [{ column: 'tensor', input: input('float32', [null, 2, 3]) }],
      ],
      [
        'INT64 [3] and INT32 [3, 2] into int64 [N] and float64 [N, 2]',
        [
          { name: 'id', shape: [3], values: BigInt64Array.from([5n, -6n, 7n]) },
          { name: 'pair', shape: [3, 2], values: Int32Array.from([1, 2, 3, 4, 5, 6]) },
        ],
        [
          { column: 'id', input: input('int64', [null]) },
          { column: 'pair', input: { name: 'y', type: 'float64', shape: [null, 2] } },
        ],
      ],
      ['FP32 [1, 17] into [N, 18] (a shape error)', [fp32([1, 17])], [{ column: 'tensor', input: tensor18 }]],
      [
        'FP32 with Infinity in row 1 (refused, the row named)',
        [fp32([2, 18], 20, Infinity)],
        [{ column: 'tensor', input: tensor18 }],
      ],
      [
        'FP64 1e300 into float32 (refused)',
        [{ name: 'tensor', shape: [1, 2], values: Float64Array.from([1, 1e300]) }],
        [{ column: 'tensor', input: input('float32', [null, 2]) }],
      ],
      [
        'INT32 300 into uint8 (refused)',
        [{ name: 'tensor', shape: [2], values: Int32Array.from([3, 300]) }],
        [{ column: 'tensor', input: input('uint8', [null]) }],
      ],
    ];
    for (const [name, tensors, bindings] of cases) {
      const [fromTensors, fromArrow] = both(tensors, bindings);
      expect(fromTensors, name).toEqual(fromArrow);
    }
    // The first case is lent, the shape error is one: the comparison above saw both kinds.
    expect(both(...(cases[0]!.slice(1) as [InputTensor[], ColumnBinding[]]))[0]).toMatchObject([
      { lent: true, transfers: 0, dims: [2, 18] },
    ]);
    expect(both(...(cases[5]!.slice(1) as [InputTensor[], ColumnBinding[]]))[0]).toMatchObject({
      code: 'invalid_tensor_shape',
    });
  });

  it('feeds small values carved out of a slab as they are: no copy, nothing lent, copied only into a worker message', () => {
    // The decode pool carves a small request's values out of a slab (FeedSlab): a region no one
    // else is handed, so the run reads it where it is.
    const slab = new FeedSlab();
    const values = slab.take(Float32Array, 36);
    values.set(Float32Array.from({ length: 36 }, (_, i) => i));
    const tensors: InputTensor[] = [{ name: 'tensor', shape: [2, 18], values }];
    const [feed] = buildFeeds({ kind: 'tensors', tensors, rows: 2 }, [{ column: 'tensor', input: tensor18 }]);
    expect(feed!.data).toBe(values);
    expect(feed!.dims).toEqual([2, 18]);
    expect(transferList([feed!])).toEqual([]);
    // A worker's message copies the 144 bytes, not the slab.
    const [owned] = ownedForMessage([feed!]);
    expect((owned!.data as Float32Array).buffer.byteLength).toBe(144);
    expect(Array.from(owned!.data as Float32Array)).toEqual(Array.from(values));
    // Still checked: a non-finite value is refused as from any other tensor.
    values[20] = NaN;
    expect(() =>
      buildFeeds({ kind: 'tensors', tensors, rows: 2 }, [{ column: 'tensor', input: tensor18 }]),
    ).toThrow(/row 1 holds NaN/);
  });

  it('reads a tensor for a bool or float16 input as numbers, never as its raw bytes', () => {
    // A UINT8 request tensor has the bool feed's array type, a UINT16 one the float16 feed's;
    // passed as they are, 7 reached a bool input (onnxruntime takes Not(7) as true) and 1
    // reached a float16 input as the half-float bits 0x0001 (6e-8), not 1.
    const bool: TensorInfoDto = { name: 'flag', type: 'bool', shape: [null, 2] };
    const half: TensorInfoDto = { name: 'h', type: 'float16', shape: [null, 2] };
    const feed = (values: Uint8Array | Uint16Array, input: TensorInfoDto): unknown =>
      buildFeeds({ kind: 'tensors', tensors: [{ name: 'x', shape: [1, 2], values }], rows: 1 }, [
        { column: 'x', input },
      ])[0]!.data;
    for (const values of [Uint8Array.from([1, 7]), new FeedSlab().take(Uint8Array, 2).fill(7)])
      expect(apiError(() => feed(values, bool)).code).toBe('invalid_inference_input');
    expect(Array.from(feed(Uint8Array.from([1, 0]), bool) as Uint8Array)).toEqual([1, 0]);
    // Quoll feeds no float16 input (as from any other column): refused, not fed as bits.
    const slabbed = new FeedSlab().take(Uint16Array, 2);
    slabbed.set([1, 2]);
    for (const values of [Uint16Array.from([1, 2]), slabbed])
      expect(apiError(() => feed(values, half)).code).toBe('invalid_inference_input');
  });
});

describe('Arrow columns into bool and float16 inputs', () => {
  const flag: TensorInfoDto = { name: 'flag', type: 'bool', shape: [null] };
  const pair: TensorInfoDto = { name: 'flag', type: 'bool', shape: [null, 2] };
  const half: TensorInfoDto = { name: 'h', type: 'float16', shape: [null] };
  const arrow = (vector: Vector, input: TensorInfoDto): WireTensor =>
    buildFeeds({ kind: 'arrow', table: new Table({ x: vector }) }, [{ column: 'x', input }])[0]!;
  /** A column of one chunk per array, of `type`. */
  const column = (type: DataType, ...chunks: ArrayLike<number>[]): Vector =>
    new Vector(chunks.map((values) => makeData({ type, length: values.length, data: values } as never)));

  it('refuses a Uint8 column holding a value other than 0 or 1 for a bool input, naming the column, its Arrow type and the input', () => {
    // The column's Uint8Array is the bool feed's array type: passed as it is, 7 reached the
    // model, where onnxruntime takes Not(7) as true.
    const error = apiError(() => arrow(column(new Uint8(), Uint8Array.from([1, 0, 7])), flag));
    expect(error.code).toBe('invalid_inference_input');
    expect(error.message).toContain('Column "x" (Arrow Uint8) row 2 holds 7');
    expect(error.message).toContain('model input "flag" (bool)');
    expect(error.details).toEqual({ column: 'x', row: 2, arrowType: 'Uint8', input: 'flag', type: 'bool' });
    // In a second record batch, and inside rows of 2: the row is counted over the whole table.
    const chunked = apiError(() =>
      arrow(column(new Uint8(), Uint8Array.from([1, 0]), Uint8Array.from([0, 255])), flag),
    );
    expect(chunked.details).toMatchObject({ column: 'x', row: 3, arrowType: 'Uint8' });
    const fsl = new FixedSizeList(2, new Field('item', new Uint8(), false));
    const rows = makeData({
      type: fsl,
      length: 2,
      nullCount: 0,
      child: makeData({ type: new Uint8(), length: 4, data: Uint8Array.from([1, 0, 2, 1]) }),
    });
    const nested = apiError(() => arrow(new Vector([rows]), pair));
    expect(nested.details).toMatchObject({ column: 'x', row: 1, arrowType: 'Uint8' });
  });

  it('feeds a Uint8 column of 0 and 1 to a bool input as it is, and numbers of other types cast as /v1 casts them', () => {
    const values = Uint8Array.from([1, 0, 1, 1]);
    const fed = arrow(column(new Uint8(), values), flag);
    expect(fed).toMatchObject({ name: 'flag', type: 'bool', dims: [4] });
    // Checked, then lent as it is (no copy: the common case stays one scan).
    expect(fed.data).toBeInstanceOf(Uint8Array);
    expect((fed.data as Uint8Array).buffer).toBe(values.buffer);
    expect(Array.from(fed.data as Uint8Array)).toEqual([1, 0, 1, 1]);
    // Int8, Int64, Float64: 0 and 1 of any number type, as JSON records' numbers.
    expect(Array.from(arrow(column(new Int8(), Int8Array.from([0, 1])), flag).data as Uint8Array)).toEqual([
      0, 1,
    ]);
    expect(
      Array.from(arrow(column(new Int64(), BigInt64Array.from([1n, 0n]) as never), flag).data as Uint8Array),
    ).toEqual([1, 0]);
    expect(
      Array.from(arrow(column(new Float64(), Float64Array.from([1, 0, -0])), flag).data as Uint8Array),
    ).toEqual([1, 0, 0]);
    for (const [type, values, shown] of [
      [new Int8(), Int8Array.from([1, -1]), 'Int8'],
      [new Int32(), Int32Array.from([0, 2]), 'Int32'],
      [new Float32(), Float32Array.from([0, NaN]), 'Float32'],
      // No fraction is a bool: truncated, 0.7 became false (numpy's astype(bool) and ONNX Cast
      // make it true), 1.5 true. Refused rather than guessed either way.
      [new Float64(), Float64Array.from([1, 0.5]), 'Float64'],
      [new Float32(), Float32Array.from([0, 0.7]), 'Float32'],
      [new Float64(), Float64Array.from([0, 1.5]), 'Float64'],
      [new Float64(), Float64Array.from([0, -0.5]), 'Float64'],
    ] as [DataType, ArrayLike<number>, string][]) {
      const error = apiError(() => arrow(column(type, values), flag));
      expect(error.code, shown).toBe('invalid_inference_input');
      expect(error.details, shown).toMatchObject({ column: 'x', row: 1, arrowType: shown, type: 'bool' });
    }
  });

  it('refuses a fraction for a bool input from JSON records and request tensors too, as from an Arrow column', () => {
    // Truncated, 0.5 and 0.7 were fed as false, 1.5 as true: numpy's astype(bool) and ONNX Cast
    // make every nonzero true, so a float column of probabilities was silently misread.
    for (const value of [0.5, 0.7, 1.5, -0.5]) {
      const records = apiError(() =>
        buildFeeds({ kind: 'records', records: [{ x: 1 }, { x: value }] }, [{ column: 'x', input: flag }]),
      );
      expect(records.code, String(value)).toBe('invalid_inference_input');
      expect(records.details, String(value)).toMatchObject({ column: 'x', row: 1 });
      const tensors = apiError(() =>
        buildFeeds(
          {
            kind: 'tensors',
            tensors: [{ name: 'x', shape: [2], values: Float64Array.from([0, value]) }],
            rows: 2,
          },
          [{ column: 'x', input: flag }],
        ),
      );
      expect(tensors.code, String(value)).toBe('invalid_inference_input');
      expect(tensors.details, String(value)).toMatchObject({ column: 'x', row: 1 });
    }
    const fed = buildFeeds({ kind: 'records', records: [{ x: 1 }, { x: 0 }] }, [
      { column: 'x', input: flag },
    ]);
    expect(Array.from(fed[0]!.data as Uint8Array)).toEqual([1, 0]);
  });

  it('refuses every column for a float16 input, naming the column, its Arrow type and the input', () => {
    // A Uint16 column's Uint16Array is the float16 feed's array type: passed as it is, 1 reached
    // the model as the half-float bits 0x0001 (6e-8). Quoll feeds no float16 input from JSON or
    // Open Inference requests; from Arrow neither.
    for (const [type, values, shown] of [
      [new Uint16(), Uint16Array.from([1, 2]), 'Uint16'],
      [new Float32(), Float32Array.from([1, 2]), 'Float32'],
      [new Int32(), Int32Array.from([1, 2]), 'Int32'],
    ] as [DataType, ArrayLike<number>, string][]) {
      const error = apiError(() => arrow(column(type, values), half));
      expect(error.code, shown).toBe('invalid_inference_input');
      expect(error.message, shown).toContain(`Column "x" (Arrow ${shown})`);
      expect(error.message, shown).toContain('model input "h" (float16)');
      expect(error.details, shown).toEqual({ column: 'x', arrowType: shown, input: 'h', type: 'float16' });
    }
  });

  it('refuses a Float16 column (half-float bits, which no input reads as numbers) and a bit-packed Bool column, as the Arrow decoder does', () => {
    // A Float16 column's Uint16Array holds half-float bits: cast as numbers, 1.0 (0x3c00)
    // reached a float32 input as 15360.
    const halves = column(new Float16(), Uint16Array.from([0x3c00, 0x4000]));
    for (const input of [tensorOf('float32'), half]) {
      const error = apiError(() => arrow(halves, input));
      expect(error.code, input.type).toBe('non_numeric_value');
      expect(error.message, input.type).toContain('Column "x" has Arrow type Float16');
    }
    const bools = vectorFromArray([true, false, true], new Bool());
    for (const input of [flag, tensorOf('float32')]) {
      const error = apiError(() => arrow(bools, input));
      expect(error.code, input.type).toBe('non_numeric_value');
      expect(error.message, input.type).toContain('Column "x" has Arrow type Bool');
    }
  });

  function tensorOf(type: TensorInfoDto['type']): TensorInfoDto {
    return { name: 'in', type, shape: [null] };
  }
});
