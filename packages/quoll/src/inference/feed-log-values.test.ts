import { describe, expect, it } from 'vitest';
import type { Table } from 'apache-arrow';
import { isLogRowSource, kindOf } from '../logs/index.js';
import type { LogRowSource } from '../logs/index.js';
import {
  makeFloat32Float64IdentityModel,
  makeScaleModel,
} from '../../../../test/support/synthetic-models.js';
import { inferenceEngineFixture } from '../../../../test/support/inference-engine-fixture.js';
import { FeedSlab } from './feed-slab.js';
import { InferenceResult } from './inference-result.js';
import { bindColumns, buildFeeds } from './input-binding.js';
import type { RecordValues } from './input-binding.js';
import { logFloat32Flags } from './log-float32-flags.js';
import { LogValuesPool } from './log-values-pool.js';
import type { WireTensor } from './tensor-data.js';

// A JSON column that feeds only float32 model inputs is logged as Float32: the very values the
// model received. They are taken from the model's feed (its float32 values), not written as
// Float64 beside it in the records walk and rounded to Float32 again for the log.

const { engine, step } = inferenceEngineFixture('quoll-feed-log-values-');
const TIME = 1_733_200_000_321;

/** Numbers whose float32 differs from them (47.6063 is fed as 47.606300354003906), per row and element. */
function awkward(row: number, i: number): number {
  return [47.6063, -122.02, 0.1, 1e-7, Math.PI, 16_777_217, -0, 3.4e38][i % 8]! + row * 0.001;
}

function records(rows: number, width: number, column = 'tensor'): Record<string, unknown>[] {
  return Array.from({ length: rows }, (_, r) => ({
    [column]: Array.from({ length: width }, (_, i) => awkward(r, i)),
  }));
}

/** The bytes of a typed array, for bit-for-bit comparisons (NaN payloads and -0 included). */
function bytesOf(values: ArrayBufferView): number[] {
  return [...new Uint8Array(values.buffer, values.byteOffset, values.byteLength)];
}

/** Leaf `leaf` of a log source as the log's staging writes it: into an array of the leaf's kind. */
function written(source: LogRowSource, leaf: number): ArrayBufferView {
  const { kind, width } = source.leaves![leaf]!;
  const length = source.numRows * width;
  const target = kind === kindOf(new Float32Array(0)) ? new Float32Array(length) : new Float64Array(length);
  source.writeLeaf(leaf, target);
  return target;
}

/** The leaf values of column `name` of a table (one batch, fixed-size lists). */
function tableLeaf(table: Table, name: string): ArrayBufferView {
  let data = table.batches[0]!.getChild(name)!.data[0]!;
  while (data.children.length > 0) data = data.children[0]!;
  return data.values as ArrayBufferView;
}

/** The log's `in.*` leaf of a logged result's column `column` (1-based leaf: `time` is 0), as staged. */
function loggedInput(result: InferenceResult, column: number): number[] {
  const rows = result.logRows();
  if (isLogRowSource(rows) && rows.leaves !== null) return bytesOf(written(rows, column));
  return bytesOf(tableLeaf(isLogRowSource(rows) ? rows.toTable() : rows, rows.schema.fields[column]!.name));
}

describe('buildFeeds: a column logged as Float32 takes its log values from its float32 feed', () => {
  const bindings = bindColumns(['tensor'], [{ name: 'tensor', type: 'float32', shape: [null, 18] }], null);

  it.each([1, 100])('%i rows: the log values are the feed’s float32 values, bit for bit', (rows) => {
    const values: RecordValues = {
      columns: ['tensor'],
      values: [],
      storage: new LogValuesPool(),
      float32: logFloat32Flags(['tensor'], bindings),
    };
    const slab = new FeedSlab();
    const [feed] = buildFeeds({ kind: 'records', records: records(rows, 18) }, bindings, slab, values);
    const logged = values.values[0]!;
    expect(logged).toBeInstanceOf(Float32Array);
    expect(bytesOf(logged)).toEqual(bytesOf(feed!.data as Float32Array));
    expect(logged[0]).toBe(47.606300354003906);
    expect(logged[0]).toBe(Math.fround(47.6063));
    if (rows === 1) {
      // Carved out of the feeds' slab: never moved to a worker (a carved feed is copied into the
      // worker's message) nor handed out again, so the log views it.
      expect(logged.buffer).toBe((feed!.data as Float32Array).buffer);
    } else {
      // A feed of its own buffer is moved (transferred) to the model worker, which detaches it:
      // the log's values must be a copy made before that.
      expect(logged.buffer).not.toBe((feed!.data as Float32Array).buffer);
      const data = feed!.data as Float32Array;
      structuredClone(data.buffer, { transfer: [data.buffer as ArrayBuffer] });
      expect((feed!.data as Float32Array).length).toBe(0);
      expect(logged.length).toBe(rows * 18);
      expect(logged[0]).toBe(Math.fround(47.6063));
    }
  });

  it('keeps the Float64 values as parsed for a column that also feeds a float64 input, and for unflagged columns', () => {
    const inputs = [
      { name: 'f32', type: 'float32' as const, shape: [null, 3] },
      { name: 'f64', type: 'float64' as const, shape: [null, 3] },
    ];
    const mixed = bindColumns(['x'], inputs, ['x', 'x']);
    const values: RecordValues = {
      columns: ['x'],
      values: [],
      storage: undefined,
      float32: logFloat32Flags(['x'], mixed),
    };
    buildFeeds({ kind: 'records', records: records(2, 3, 'x') }, mixed, undefined, values);
    expect(values.values[0]).toBeInstanceOf(Float64Array);
    expect([...values.values[0]!]).toEqual([0, 1, 2, 0, 1, 2].map((i, at) => awkward(at < 3 ? 0 : 1, i)));

    // Two columns, one flagged: each gets its own kind.
    const two = bindColumns(['a', 'b'], inputs, ['a', 'b']);
    const both: RecordValues = {
      columns: ['a', 'b'],
      values: [],
      storage: undefined,
      float32: logFloat32Flags(['a', 'b'], two),
    };
    buildFeeds(
      { kind: 'records', records: [{ a: [0.1, 0.2, 0.3], b: [0.1, 0.2, 0.3] }] },
      two,
      undefined,
      both,
    );
    expect(both.values[0]).toBeInstanceOf(Float32Array);
    expect([...both.values[0]!]).toEqual([0.1, 0.2, 0.3].map(Math.fround));
    expect(both.values[1]).toBeInstanceOf(Float64Array);
    expect([...both.values[1]!]).toEqual([0.1, 0.2, 0.3]);
  });
});

describe('the log of a JSON request holds the model’s float32 feed bit for bit (guard)', () => {
  /** A result's output `name`, the values the model received (its model is Identity / × 1). */
  function received(result: InferenceResult, name: string): number[] {
    const output = result.outputs.find((candidate) => candidate.name === name) as WireTensor;
    return bytesOf(output.data as Float32Array | Float64Array);
  }

  it.each([
    { rows: 1, inline: true },
    { rows: 1, inline: false },
    { rows: 100, inline: false },
    { rows: 700, inline: false },
  ])('records of $rows rows (inline runs $inline): in.tensor is the feed', async ({ rows, inline }) => {
    const bytes = makeScaleModel({ factor: 1 });
    const deployment = await engine(false, inline).deploy('scale', [step('scale', bytes)]);
    try {
      await deployment.inlineDecided;
      const result = await deployment.infer({ kind: 'records', records: records(rows, 18) }, TIME, true);
      const logged = loggedInput(result, 1);
      expect(logged).toEqual(received(result, 'scaled'));
      expect(new Float32Array(new Uint8Array(logged).buffer)[0]).toBe(47.606300354003906);
      result.release();
    } finally {
      await deployment.close();
    }
  });

  it('records decoded by the model worker (a big body): in.tensor is the feed', async () => {
    const bytes = makeScaleModel({ factor: 1 });
    const deployment = await engine(false).deploy('scale', [step('scale', bytes)]);
    try {
      const body = new TextEncoder().encode(JSON.stringify(records(700, 18)));
      const result = await deployment.infer(
        { kind: 'undecoded-records', body, deadlineMs: 5000 },
        TIME,
        true,
      );
      const logged = loggedInput(result, 1);
      expect(logged).toEqual(received(result, 'scaled'));
      expect(new Float32Array(new Uint8Array(logged).buffer)[0]).toBe(47.606300354003906);
      result.release();
    } finally {
      await deployment.close();
    }
  });

  it.each([1, 100])(
    '%i rows, a column that feeds a float32 and a float64 input: logged as sent (Float64), the float64 input’s values',
    async (rows) => {
      const bytes = makeFloat32Float64IdentityModel(3);
      const model = step('pair', bytes);
      const deployment = await engine(false).deploy('pair', [
        { ...model, config: { ...model.config, tensorFields: ['x', 'x'] } },
      ]);
      try {
        const result = await deployment.infer(
          { kind: 'records', records: records(rows, 3, 'x') },
          TIME,
          true,
        );
        expect(loggedInput(result, 1)).toEqual(received(result, 'o64'));
        expect(new Float64Array(new Uint8Array(loggedInput(result, 1)).buffer)[0]).toBe(47.6063);
        result.release();
      } finally {
        await deployment.close();
      }
    },
  );
});

describe('InferenceResult logged as a table with a column’s Float32 feed values', () => {
  /** Records whose `tensor` arrays count every element read (as a walk of the records would). */
  function counted(rows: number, width: number): { records: Record<string, unknown>[]; reads: () => number } {
    let reads = 0;
    const list = records(rows, width).map((record) => ({
      tensor: new Proxy(record.tensor as number[], {
        get(target, key, receiver) {
          if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
          return Reflect.get(target, key, receiver) as unknown;
        },
      }),
    }));
    return { records: list, reads: () => reads };
  }

  it.each([1, 100])(
    'Deployment.infer(…, logged) of %i rows takes them from the feed: its log table reads no record again (guard of the wiring)',
    async (rows) => {
      // Float64 walk values (the wiring dropped: `float32` not passed to buildFeeds) do not fit
      // the log table's Float32 leaf, which then walks the records again.
      const deployment = await engine(false).deploy('scale', [step('scale', makeScaleModel({ factor: 1 }))]);
      try {
        const { records: list, reads } = counted(rows, 18);
        const result = await deployment.infer({ kind: 'records', records: list }, TIME, true);
        const afterRun = reads();
        expect(afterRun).toBeGreaterThanOrEqual(rows * 18);
        const table = result.toLogTable();
        expect(reads()).toBe(afterRun);
        expect(String(table.schema.fields[1]!.type)).toBe('FixedSizeList[18]<Float32>');
        const scaled = result.outputs.find((output) => output.name === 'scaled')!;
        expect(bytesOf(tableLeaf(table, 'in.tensor'))).toEqual(bytesOf(scaled.data as Float32Array));
        result.release();
      } finally {
        await deployment.close();
      }
    },
  );

  it('builds the log table from them (string outputs: no source), keeps the answer as sent, and keeps them from the pool', () => {
    const bindings = bindColumns(['tensor'], [{ name: 'tensor', type: 'float32', shape: [null, 3] }], null);
    const flags = logFloat32Flags(['tensor'], bindings);
    const { records: list, reads } = counted(2, 3);
    const values: RecordValues = { columns: ['tensor'], values: [], storage: undefined, float32: flags };
    const [feed] = buildFeeds({ kind: 'records', records: list }, bindings, new FeedSlab(), values);
    const given: ArrayBufferView[] = [];
    const result = new InferenceResult(
      { kind: 'records', records: list },
      ['tensor'],
      [{ name: 'label', type: 'string', dims: [2], data: ['a', 'b'] }],
      2,
      TIME,
      null,
      values.values,
      { give: (array) => given.push(array) },
      flags,
    );
    const afterFeeds = reads();
    const rows = result.logRows() as LogRowSource;
    expect(rows.leaves).toBeNull();
    const table = rows.toTable();
    expect(String(table.schema.fields[1]!.type)).toBe('FixedSizeList[3]<Float32>');
    expect(bytesOf(tableLeaf(table, 'in.tensor'))).toEqual(bytesOf(feed!.data as Float32Array));
    expect(reads()).toBe(afterFeeds);
    // The table views them: never given back to be written over.
    rows.copied?.();
    result.release();
    expect(given).toEqual([]);
    // The answer: Float64, the numbers as sent (read from the records).
    const answer = result.toArrowTable();
    expect(String(answer.schema.fields[1]!.type)).toBe('FixedSizeList[3]<Float64>');
    expect([...(tableLeaf(answer, 'in.tensor') as Float64Array)]).toEqual(
      [0, 1, 2, 0, 1, 2].map((i, at) => awkward(at < 3 ? 0 : 1, i)),
    );
  });
});
