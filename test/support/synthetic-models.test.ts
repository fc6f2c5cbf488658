import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { tableFromIPC } from 'apache-arrow';
import {
  makeInt64SumModel,
  makeMultiIoModel,
  makeScaleModel,
  makeTreeEnsembleRegressor,
} from './synthetic-models.js';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from './synthetic-data.js';

describe('synthetic models', () => {
  it('the tree ensemble is deterministic per seed and gives house prices on house rows', async () => {
    const bytes = makeTreeEnsembleRegressor();
    expect(Buffer.from(makeTreeEnsembleRegressor()).equals(Buffer.from(bytes))).toBe(true);
    expect(Buffer.from(makeTreeEnsembleRegressor({ seed: 2 })).equals(Buffer.from(bytes))).toBe(false);
    const session = await ort.InferenceSession.create(bytes);
    expect(session.inputNames).toEqual(['float_input']);
    expect(session.outputNames).toEqual(['variable']);
    const rows = makeHouseRows(200, 7);
    const out = await session.run({ float_input: new ort.Tensor('float32', rows, [200, 18]) });
    const values = out.variable!.data as Float32Array;
    expect(out.variable!.dims).toEqual([200, 1]);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(200_000);
    expect(Math.max(...values)).toBeLessThanOrEqual(2_000_000);
    // Different rows take different paths: the model is not a constant.
    expect(new Set(values).size).toBeGreaterThan(20);
  });

  it('the heavy 29-feature, 100-tree, depth-6 ensemble loads and runs', async () => {
    const session = await ort.InferenceSession.create(
      makeTreeEnsembleRegressor({ features: 29, trees: 100, depth: 6 }),
    );
    const out = await session.run({
      float_input: new ort.Tensor('float32', makeHouseRows(10, 3, 29), [10, 29]),
    });
    expect(out.variable!.dims).toEqual([10, 1]);
  });

  it('the multi-io model sums a and doubles b', async () => {
    const session = await ort.InferenceSession.create(makeMultiIoModel());
    const out = await session.run({
      a: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]),
      b: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [2, 2]),
    });
    expect(Array.from(out.sum_a!.data as Float32Array)).toEqual([6, 15]);
    expect(Array.from(out.scaled_b!.data as Float32Array)).toEqual([2, 4, 6, 8]);
  });

  it('the scale and int64 models compute what they say', async () => {
    const scale = await ort.InferenceSession.create(makeScaleModel({ width: 2, factor: 3 }));
    const scaled = await scale.run({ tensor: new ort.Tensor('float32', Float32Array.from([1, 2]), [1, 2]) });
    expect(Array.from(scaled.scaled!.data as Float32Array)).toEqual([3, 6]);
    const sum = await ort.InferenceSession.create(makeInt64SumModel());
    const summed = await sum.run({ x: new ort.Tensor('int64', BigInt64Array.from([1n, 2n, 3n]), [1, 3]) });
    expect(Array.from(summed.sum!.data as BigInt64Array)).toEqual([6n]);
  });

  it('makeArrowTensorTable round-trips through an IPC file as FixedSizeList<Float32>', () => {
    const rows = makeHouseRows(5, 1);
    const table = tableFromIPC(tableToIpcFile(makeArrowTensorTable(rows, 18)));
    expect(table.numRows).toBe(5);
    expect(String(table.schema.fields[0]!.type)).toBe('FixedSizeList[18]<Float32>');
    expect(Array.from(table.getChild('tensor')!.get(1) as Float32Array)).toEqual(
      Array.from(rows.subarray(18, 36)),
    );
  });
});
