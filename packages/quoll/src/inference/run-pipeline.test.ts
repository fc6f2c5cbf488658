import { serialize } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { makeMultiIoModel, makeScaleModel } from '../../../../test/support/synthetic-models.js';
import { createSession } from './native-session.js';
import { runPipeline } from './run-pipeline.js';
import type { LoadedStep } from './run-pipeline.js';

/**
 * The tag V8's serializer (the one `postMessage` uses) writes first for an array: `A` dense,
 * `a` sparse (every holey array, read back element by element: `ReadSparseJSArray`).
 */
function arrayTag(value: readonly unknown[]): string {
  const bytes = serialize(value);
  // Header: 0xFF, version varint (one byte for V8's versions so far).
  return String.fromCharCode(bytes[2]!);
}

function step(model: Uint8Array, inputs: LoadedStep['spec']['inputs'], single = false): LoadedStep {
  return {
    spec: { label: 'm v1', sha: 'x', path: '', inputs, feedsFrom: null, single, tensorFields: null },
    session: createSession(model, 1),
  };
}

describe('runPipeline', () => {
  it('answers dims as dense arrays, so the reply crosses to the HTTP thread as dense (onnxruntime hands out holey ones)', () => {
    const rows = 3;
    const loaded = step(makeMultiIoModel(), [
      { name: 'a', type: 'float32', shape: ['N', 3] },
      { name: 'b', type: 'float32', shape: ['N', 2] },
    ]);
    const outputs = runPipeline(
      [loaded],
      [
        { name: 'a', type: 'float32', dims: [rows, 3], data: new Float32Array(rows * 3).fill(1) },
        { name: 'b', type: 'float32', dims: [rows, 2], data: new Float32Array(rows * 2).fill(1) },
      ],
      rows,
    );
    expect(outputs.map((output) => output.dims)).toEqual([
      [3, 1],
      [3, 2],
    ]);
    for (const output of outputs) expect(arrayTag(output.dims)).toBe('A');
    expect(arrayTag(outputs)).toBe('A');
    loaded.session.release();
  });

  it('answers dense dims for a row-by-row step too', () => {
    const loaded = step(
      makeScaleModel({ width: 2 }),
      [{ name: 'tensor', type: 'float32', shape: ['N', 2] }],
      true,
    );
    const outputs = runPipeline(
      [loaded],
      [{ name: 'tensor', type: 'float32', dims: [2, 2], data: Float32Array.of(1, 2, 3, 4) }],
      2,
    );
    expect(outputs[0]!.dims).toEqual([2, 2]);
    expect([...(outputs[0]!.data as Float32Array)]).toEqual([2, 4, 6, 8]);
    expect(arrayTag(outputs[0]!.dims)).toBe('A');
    loaded.session.release();
  });
});
