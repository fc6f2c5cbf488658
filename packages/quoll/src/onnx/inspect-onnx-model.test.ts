import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import { mulberry32 } from '../../../../test/support/synthetic-data.js';
import {
  makeInt64SumModel,
  makeMultiIoModel,
  makeScaleModel,
  makeTreeEnsembleRegressor,
} from '../../../../test/support/synthetic-models.js';
import {
  hasSharedFixtures as hasFixtures,
  SHARED_FIXTURES,
} from '../../../../test/support/shared-fixtures.js';
import { inspectOnnxModel } from './index.js';

const RF_MODEL = `${SHARED_FIXTURES}rf_model.onnx`;

function randomBytes(length: number, seed: number): Uint8Array {
  const random = mulberry32(seed);
  return Uint8Array.from({ length }, () => Math.floor(random() * 256));
}

function invalidModelError(bytes: Uint8Array): ApiError {
  try {
    inspectOnnxModel(bytes);
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('inspectOnnxModel accepted the bytes');
}

describe('inspectOnnxModel', () => {
  it.skipIf(!hasFixtures)(
    'reads the tutorial rf model: float_input float32 [N,18] → variable float32 [N,1]',
    () => {
      const info = inspectOnnxModel(readFileSync(RF_MODEL));
      expect(info.inputs).toEqual([{ name: 'float_input', type: 'float32', shape: [null, 18] }]);
      expect(info.outputs).toEqual([{ name: 'variable', type: 'float32', shape: [null, 1] }]);
      expect(info.producer).toBe('skl2onnx');
      expect(info.opsetImports).toContainEqual({ domain: 'ai.onnx.ml', version: 1 });
    },
  );

  it('reads symbolic dimensions of the synthetic tree ensemble as strings', () => {
    const info = inspectOnnxModel(makeTreeEnsembleRegressor({ features: 29 }));
    expect(info.inputs).toEqual([{ name: 'float_input', type: 'float32', shape: ['N', 29] }]);
    expect(info.outputs).toEqual([{ name: 'variable', type: 'float32', shape: ['N', 1] }]);
    expect(info.producer).toBe('quoll-synthetic');
  });

  it('lists every input and output of a multi-io model in graph order, without initializers', () => {
    const info = inspectOnnxModel(makeMultiIoModel());
    expect(info.inputs.map((input) => input.name)).toEqual(['a', 'b']);
    expect(info.outputs.map((output) => `${output.name}:${output.type}`)).toEqual([
      'sum_a:float32',
      'scaled_b:float32',
    ]);
  });

  it('leaves out an initializer that is also listed as a graph input', () => {
    const info = inspectOnnxModel(makeScaleModel({ initializerAsInput: true }));
    expect(info.inputs.map((input) => input.name)).toEqual(['tensor']);
  });

  it('reports int64 element types', () => {
    const info = inspectOnnxModel(makeInt64SumModel());
    expect(info.inputs[0]).toEqual({ name: 'x', type: 'int64', shape: ['N', 3] });
    expect(info.outputs[0]?.type).toBe('int64');
  });

  it.each([
    ['random bytes', randomBytes(4096, 9)],
    ['a JSON file', Buffer.from(JSON.stringify({ model: 'rf', inputs: [1, 2, 3] }))],
    ['a text file', Buffer.from('This is not a model.\nJust some text.\n')],
    ['an empty file', new Uint8Array(0)],
    ['a truncated model', makeTreeEnsembleRegressor().subarray(0, 300)],
  ])('refuses %s with invalid_model and says an ONNX file is expected', (_what, bytes) => {
    const error = invalidModelError(bytes);
    expect(error.code).toBe('invalid_model');
    expect(error.message).toMatch(/ONNX/);
  });
});
