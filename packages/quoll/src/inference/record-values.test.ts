import { describe, expect, it } from 'vitest';
import type { Data } from 'apache-arrow';
import type { TensorInfoDto } from '@quoll/client/wire';
import { isLogRowSource } from '../logs/index.js';
import type { LogRowSource } from '../logs/index.js';
import { FeedSlab } from './feed-slab.js';
import { InferenceResult } from './inference-result.js';
import { LogValuesPool } from './log-values-pool.js';
import { buildFeeds } from './input-binding.js';
import type { RecordValues } from './input-binding.js';

const TIME = 1_733_200_000_123;
const input3: TensorInfoDto = { name: 'tensor', type: 'float32', shape: [null, 3] };
const scalar: TensorInfoDto = { name: 'x', type: 'int32', shape: [null] };
const nested: TensorInfoDto = { name: 'm', type: 'float32', shape: [null, 2, 2] };

/** Records whose numbers float32 cannot hold exactly: the log must get them as parsed. */
function records(): Record<string, unknown>[] {
  return JSON.parse(
    '[{"tensor":[0.1,0.2,0.3],"x":7,"m":[[0.1,1],[2,3]]},{"tensor":[1e-7,3.141592653589793,-0.7],"x":-2,"m":[[4,5],[6,0.3]]}]',
  ) as Record<string, unknown>[];
}

function logValues(): RecordValues {
  return { columns: ['tensor', 'x', 'm'], values: [], storage: new FeedSlab(1024, 512) };
}

const bindings = [
  { column: 'tensor', input: input3 },
  { column: 'x', input: scalar },
  { column: 'm', input: nested },
];

/** Every leaf of `source` written whole (writeLeaf) and in slices of one row (leafWriter), as hex. */
function written(source: LogRowSource): { whole: string[]; sliced: string[] } {
  const whole: string[] = [];
  const sliced: string[] = [];
  const table = source.toTable();
  const leaves: ArrayBufferView[] = [];
  const visit = (d: Data): void => {
    if (d.children.length > 0) for (const child of d.children) visit(child);
    else leaves.push(d.values as ArrayBufferView);
  };
  for (const column of table.batches[0]!.data.children) visit(column);
  leaves.forEach((values, i) => {
    const T = values.constructor as new (n: number) => ArrayBufferView;
    const a = new T(source.numRows * source.leaves![i]!.width);
    new Uint8Array(a.buffer).fill(0xa5);
    source.writeLeaf(i, a);
    whole.push(Buffer.from(a.buffer).toString('hex'));
    const b = new T(source.numRows * source.leaves![i]!.width);
    new Uint8Array(b.buffer).fill(0xa5);
    const write = source.leafWriter!(i, b);
    for (let r = 0; r < source.numRows; r++) write(1);
    sliced.push(Buffer.from(b.buffer).toString('hex'));
  });
  return { whole, sliced };
}

describe('buildFeeds writes a records input’s log values beside its feeds (RecordValues)', () => {
  it('gives each flat or scalar column its numbers as Float64, as parsed, not the feed’s float32 cast', () => {
    const values = logValues();
    const feeds = buildFeeds({ kind: 'records', records: records() }, bindings, undefined, values);
    expect(Array.from(values.values[0]!)).toEqual([0.1, 0.2, 0.3, 1e-7, 3.141592653589793, -0.7]);
    expect(values.values[0]).toBeInstanceOf(Float64Array);
    // The feed holds the float32 cast: not the log's values.
    expect(feeds[0]!.data[0]).not.toBe(0.1);
    expect(Array.from(values.values[1]!)).toEqual([7, -2]);
    // Rows nested more than one level: the log reads those from the records.
    expect(values.values[2]).toBeNull();
  });

  it('aligns the values with the request’s columns, not the bindings’ order', () => {
    const values: RecordValues = { columns: ['x', 'tensor'], values: [], storage: undefined };
    buildFeeds(
      { kind: 'records', records: [{ tensor: [0.1, 0.2, 0.3], x: 4 }] },
      [
        { column: 'tensor', input: input3 },
        { column: 'x', input: scalar },
      ],
      undefined,
      values,
    );
    expect(Array.from(values.values[0]!)).toEqual([4]);
    expect(Array.from(values.values[1]!)).toEqual([0.1, 0.2, 0.3]);
  });

  it('sets nothing when a feed is refused', () => {
    const values = logValues();
    const bad = records();
    (bad[1]!.m as unknown[][])[1]![1] = 'x';
    expect(() => buildFeeds({ kind: 'records', records: bad }, bindings, undefined, values)).toThrow();
    expect(values.values).toEqual([]);
  });
});

describe('InferenceResult.logRows with the input pass’s record values', () => {
  it('logs the same bytes as from the records alone, whole and in slices', () => {
    const values = logValues();
    const input = { kind: 'records' as const, records: records() };
    const outputs = [{ name: 'y', type: 'float32' as const, dims: [2, 1], data: Float32Array.of(1, 2) }];
    buildFeeds(input, bindings, undefined, values);
    const withValues = new InferenceResult(input, values.columns, outputs, 2, TIME, null, values.values);
    const without = new InferenceResult(input, values.columns, outputs, 2, TIME);
    const a = written(withValues.logRows() as LogRowSource);
    const b = written(without.logRows() as LogRowSource);
    expect(a).toEqual(b);
    expect(a.sliced).toEqual(a.whole);
    expect(a.whole[1]).toBe(
      Buffer.from(Float64Array.of(0.1, 0.2, 0.3, 1e-7, 3.141592653589793, -0.7).buffer).toString('hex'),
    );
  });

  it('copies the given values instead of reading the records again', () => {
    const input = { kind: 'records' as const, records: [{ tensor: [1, 2, 3] }] };
    const given = [Float64Array.of(0.1, 0.2, 0.3)];
    const source = new InferenceResult(input, ['tensor'], [], 1, TIME, null, given).logRows() as LogRowSource;
    const got = new Float64Array(3);
    source.writeLeaf(1, got);
    expect(Array.from(got)).toEqual([0.1, 0.2, 0.3]);
  });

  it('reads the records when the values do not fill the column exactly', () => {
    const input = { kind: 'records' as const, records: [{ tensor: [1, 2, 3] }] };
    const given = [Float64Array.of(0.1, 0.2)];
    const source = new InferenceResult(input, ['tensor'], [], 1, TIME, null, given).logRows() as LogRowSource;
    const got = new Float64Array(3);
    source.leafWriter!(1, got)(1);
    expect(Array.from(got)).toEqual([1, 2, 3]);
  });
});

describe('InferenceResult.toArrowTable with the input pass’s record values', () => {
  /** The table's schema and each column's values, as plain data. */
  function plain(result: InferenceResult): { schema: string; columns: unknown[][] } {
    const table = result.toArrowTable();
    return {
      schema: table.schema.fields.map((field) => `${field.name}:${String(field.type)}`).join('|'),
      columns: table.schema.fields.map((field) =>
        Array.from({ length: table.numRows }, (_, row) => {
          const cell: unknown = table.getChild(field.name)!.get(row);
          return cell !== null && typeof cell === 'object' ? JSON.stringify(cell) : cell;
        }),
      ),
    };
  }

  it('builds the same table (schema, in.* values as parsed) as from the records alone, one-element lists and bare numbers included', () => {
    const one: TensorInfoDto = { name: 'one', type: 'float32', shape: [null, 1] };
    const rows = JSON.parse(
      '[{"tensor":[0.1,0.2,0.3],"x":7,"m":[[0.1,1],[2,3]],"one":[0.1]},{"tensor":[1e-7,3.141592653589793,-0.7],"x":-2,"m":[[4,5],[6,0.3]],"one":[-0.7]}]',
    ) as Record<string, unknown>[];
    const columns = ['tensor', 'x', 'm', 'one'];
    const values: RecordValues = { columns, values: [], storage: undefined };
    const input = { kind: 'records' as const, records: rows };
    buildFeeds(input, [...bindings, { column: 'one', input: one }], undefined, values);
    const outputs = [{ name: 'label', type: 'string' as const, dims: [2], data: ['a', 'b'] }];
    const withValues = new InferenceResult(input, columns, outputs, 2, TIME, null, values.values);
    const without = new InferenceResult(input, columns, outputs, 2, TIME);
    const a = plain(withValues);
    expect(a).toEqual(plain(without));
    expect(a.schema).toContain('in.one:FixedSizeList[1]<Float64>');
    expect(a.columns[1]).toEqual(['[0.1,0.2,0.3]', '[1e-7,3.141592653589793,-0.7]']);
    // The table views the values as they are (no copy).
    const data = withValues.toArrowTable().getChild('in.tensor')!.data[0]!.children[0]!;
    expect(data.values).toBe(values.values[0]);
  });
});

describe('InferenceResult.release gives the log values back to their pool only when nothing can read them again', () => {
  const rows = 120;
  /** A result of `rows` records whose log values (above the log slab's regions) came from `pool`. */
  function pooled(pool: LogValuesPool): { result: InferenceResult; values: Float64Array } {
    const input = {
      kind: 'records' as const,
      records: Array.from({ length: rows }, (_, r) => ({ tensor: [r, r + 0.5, r + 0.25] })),
    };
    const recordValues: RecordValues = { columns: ['tensor'], values: [], storage: pool };
    buildFeeds(input, [{ column: 'tensor', input: input3 }], undefined, recordValues);
    const outputs = [{ name: 'y', type: 'float32' as const, dims: [rows, 1], data: new Float32Array(rows) }];
    const result = new InferenceResult(
      input,
      ['tensor'],
      outputs,
      rows,
      TIME,
      null,
      recordValues.values,
      pool,
    );
    // Unflagged (no `float32`): Float64 values.
    return { result, values: recordValues.values[0] as Float64Array };
  }

  it('gives them back once the log copied its source (`copied`), once however often released', () => {
    const pool = new LogValuesPool();
    const { result, values } = pooled(pool);
    const source = result.logRows() as LogRowSource;
    source.writeLeaf(1, new Float64Array(rows * 3));
    source.copied!();
    result.release();
    result.release();
    expect(pool.pooledBytes).toBe(values.byteLength);
    expect(pool.take(Float64Array, rows * 3)).toBe(values);
  });

  it('keeps them when the log did not say it copied the source (kept for the packer, refused, or still waiting)', () => {
    const pool = new LogValuesPool();
    const { result } = pooled(pool);
    result.logRows();
    result.release();
    expect(pool.pooledBytes).toBe(0);
  });

  it('keeps them when a table views them (an Arrow answer, or the log took the table)', () => {
    const pool = new LogValuesPool();
    const { result } = pooled(pool);
    result.toArrowTable();
    const rowsOut = result.logRows();
    expect(isLogRowSource(rowsOut)).toBe(false);
    result.release();
    expect(pool.pooledBytes).toBe(0);
  });

  it('keeps them when more than one source was handed out (only one said it was copied)', () => {
    const pool = new LogValuesPool();
    const { result } = pooled(pool);
    const first = result.logRows() as LogRowSource;
    result.logRows();
    first.copied!();
    result.release();
    expect(pool.pooledBytes).toBe(0);
  });
});
