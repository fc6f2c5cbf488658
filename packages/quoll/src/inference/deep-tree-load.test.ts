import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import { makeChainTree } from '../../../../test/support/deep-tree-models.js';
import { inferenceEngineFixture } from '../../../../test/support/inference-engine-fixture.js';
import { makeArrowTensorTable, makeHouseRows } from '../../../../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../../../../test/support/synthetic-models.js';
import { createSession } from './native-session.js';

// Review of 4 December, F2: onnxruntime builds a tree by one native frame per level, so a
// chain-shaped tree of 6000 levels overflowed a worker's stack (SIGSEGV of the whole process)
// and one of 16 000 the main thread's. Every path to an onnxruntime load refuses it first.

const { engine, step } = inferenceEngineFixture('quoll-deep-tree-');

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('over-deep trees never reach onnxruntime', () => {
  it('validateModel (the upload check) refuses a 6000-level tree, by bytes or by path, with invalid_model', async () => {
    const created = engine(false);
    const deep = makeChainTree({ depth: 6000 });
    for (const model of [deep, step('deep', deep).path]) {
      const error = await rejection(created.validateModel(model));
      expect(error.code).toBe('invalid_model');
      expect(error.message).toContain('is 6000 levels deep, more than the 1024 Quoll loads');
    }
    expect(created.workerCount).toBe(0);
    await created.validateModel(makeChainTree({ depth: 1024 }));
  });

  it('deploying a stored over-deep model (stored before the upload check) fails with invalid_model, and the engine serves on', async () => {
    for (const inline of [false, true]) {
      const created = engine(false, inline);
      const error = await rejection(created.deploy('deep', [step('deep', makeChainTree({ depth: 6000 }))]));
      expect(error.code).toBe('invalid_model');
      expect(error.message).toContain('is 6000 levels deep');
      const ok = await created.deploy('ok', [step('trees', makeTreeEnsembleRegressor())]);
      const result = await ok.infer(
        { kind: 'arrow', table: makeArrowTensorTable(makeHouseRows(4, 1), 18) },
        0,
      );
      expect(result.rowCount).toBe(4);
    }
  });

  it('createSession on the calling thread refuses a 16 000-level tree (it crashed the main thread)', () => {
    expect(() => createSession(makeChainTree({ depth: 16_000 }), 1)).toThrow(/16000 levels deep/);
  });
});
