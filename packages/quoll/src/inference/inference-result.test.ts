import { describe, expect, it } from 'vitest';
import { Field, FixedSizeList, Float32, Float64, List, Table, vectorFromArray } from 'apache-arrow';
import { makeArrowTensorTable } from '../../../../test/support/synthetic-data.js';
import { InferenceResult } from './inference-result.js';
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
