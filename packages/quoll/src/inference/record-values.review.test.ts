import { describe, expect, it } from 'vitest';
import { kindOf } from '../logs/index.js';
import type { LogRowSource } from '../logs/index.js';
import { makeTreeEnsembleRegressor } from '../../../../test/support/synthetic-models.js';
import { inferenceEngineFixture } from '../../../../test/support/inference-engine-fixture.js';
import { FeedSlab, LOG_SLAB_BYTES, LOG_SLAB_MAX_BYTES } from './feed-slab.js';
import { InferenceResult } from './inference-result.js';
import { buildFeeds } from './input-binding.js';
import type { RecordValues } from './input-binding.js';

// Review of lane logfill (record values written in the feeds' walk).

const { engine, step } = inferenceEngineFixture('quoll-review-logfill-');
const TIME = 1_733_200_000_123;

/** Records whose `tensor` arrays count every element read (as a second walk of the records would). */
function countedRecords(
  rows: number,
  width: number,
): { records: Record<string, unknown>[]; reads: () => number } {
  let reads = 0;
  const records = Array.from({ length: rows }, (_, r) => {
    const row = Array.from({ length: width }, (_, i) => 0.1 + r + i / 10);
    return {
      tensor: new Proxy(row, {
        get(target, key, receiver) {
          if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
          return Reflect.get(target, key, receiver) as unknown;
        },
      }),
    };
  });
  return { records, reads: () => reads };
}

describe('review logfill: the wiring is tested end to end (guard: green on the lane, red if the wiring is dropped)', () => {
  it('Deployment.infer(…, logged=true) hands the log the feeds’ walk values: the log does not read the records again', async () => {
    const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 4, depth: 3 });
    const deployment = await engine(false).deploy('tree', [step('tree', bytes)]);
    const { records, reads } = countedRecords(3, 18);
    const result = await deployment.infer({ kind: 'records', records }, TIME, true);
    const source = result.logRows() as LogRowSource;
    // The feeds' walk read every element once (and the shapes' first elements).
    const afterFeeds = reads();
    expect(afterFeeds).toBeGreaterThanOrEqual(3 * 18);
    // The model's input is float32, so the log's leaf is Float32 (feedlog lane: its values are
    // the feed's, 0.1 as the model received it), written into an array of that kind as the
    // staging writes it.
    expect(source.leaves![1]!.kind).toBe(kindOf(new Float32Array(0)));
    const got = new Float32Array(3 * 18);
    source.writeLeaf(1, got);
    expect(reads()).toBe(afterFeeds);
    expect(got[0]).toBe(Math.fround(0.1));
  });
});

describe('review logfill: the table path ignores the record values', () => {
  it('toTable() of a result whose source cannot be staged (string output) uses the values instead of walking the records a second time', () => {
    const { records, reads } = countedRecords(2, 3);
    const values: RecordValues = { columns: ['tensor'], values: [], storage: undefined };
    buildFeeds(
      { kind: 'records', records },
      [{ column: 'tensor', input: { name: 'tensor', type: 'float32', shape: [null, 3] } }],
      undefined,
      values,
    );
    const afterFeeds = reads();
    const outputs = [{ name: 'label', type: 'string' as const, dims: [2], data: ['a', 'b'] }];
    const result = new InferenceResult(
      { kind: 'records', records },
      ['tensor'],
      outputs,
      2,
      TIME,
      null,
      values.values,
    );
    const source = result.logRows() as LogRowSource;
    // String outputs: not fixed-width, so the log takes the table.
    expect(source.leaves).toBeNull();
    const table = source.toTable();
    expect(Array.from(table.getChild('in.tensor')!.get(0) as Iterable<number>)).toEqual([
      0.1, 0.2, 0.30000000000000004,
    ]);
    expect(reads()).toBe(afterFeeds);
  });
});

describe('review logfill: memory a logged result pins', () => {
  it('a small request’s log values (the deployment’s log slab) keep at most 4× their own bytes alive', () => {
    // The same FeedSlab as Deployment#logSlab (second shift: its sizes are exported, so that
    // this test follows them instead of the lane's 128 KiB slabs, 32 KiB regions).
    const slab = new FeedSlab(LOG_SLAB_BYTES, LOG_SLAB_MAX_BYTES);
    const values: RecordValues = { columns: ['tensor'], values: [], storage: slab };
    buildFeeds(
      { kind: 'records', records: [{ tensor: [1, 2, 3] }] },
      [{ column: 'tensor', input: { name: 'tensor', type: 'float32', shape: [null, 3] } }],
      undefined,
      values,
    );
    const kept = values.values[0]!;
    expect(kept.byteLength).toBe(24);
    // A source the log keeps (≥ STAGE_MAX_BYTES, until the writer confirms) or a result a slow
    // caller holds pins the whole slab: 131 072 bytes for 24.
    expect(kept.buffer.byteLength).toBeLessThanOrEqual(4 * Math.max(kept.byteLength, 2 * 1024));
  });
});

describe('review logfill: aligning the values with the request’s columns', () => {
  it('is linear in the columns: a record of 2 000 scalar columns reads each binding’s column a few times, not once per column (findIndex per column)', () => {
    const C = 2000;
    const columns = Array.from({ length: C }, (_, i) => `c${i}`);
    let reads = 0;
    const bindings = columns.map((name) => {
      const binding = { input: { name, type: 'float32' as const, shape: [null] } } as {
        readonly column: string;
        readonly input: { name: string; type: 'float32'; shape: (number | null)[] };
      };
      Object.defineProperty(binding, 'column', {
        get: () => {
          reads++;
          return name;
        },
      });
      return binding;
    });
    const record: Record<string, number> = {};
    columns.forEach((name, i) => (record[name] = i + 0.1));
    const values: RecordValues = { columns, values: [], storage: undefined };
    buildFeeds({ kind: 'records', records: [record] }, bindings, undefined, values);
    expect(values.values[C - 1]![0]).toBe(C - 1 + 0.1);
    // Without record values buildFeeds reads each binding's column once; the lane's alignment
    // (`bindings.findIndex` per request column, input-binding.ts:156) reads ~C²/2 = 2 000 000.
    expect(reads).toBeLessThanOrEqual(10 * C);
  });
});
