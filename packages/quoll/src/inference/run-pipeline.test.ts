import { serialize } from 'node:v8';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { encodeModel, valueInfo } from '../../../../test/support/onnx-graph.js';
import { makeMultiIoModel } from '../../../../test/support/synthetic-models.js';
import { createSession } from './native-session.js';
import { runPipeline } from './run-pipeline.js';
import type { LoadedStep } from './run-pipeline.js';

const { onnx } = onnxProto;

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

  it("answers dense dims and string data for a single-row row-by-row step (its one run's arrays used to pass through holey)", () => {
    const model = encodeModel(
      {
        nodes: [onnx.NodeProto.create({ opType: 'Identity', input: ['s'], output: ['o'] })],
        inputs: [valueInfo('s', onnx.TensorProto.DataType.STRING, ['N', 2])],
        outputs: [valueInfo('o', onnx.TensorProto.DataType.STRING, ['N', 2])],
      },
      { producerName: 'quoll-test', graphName: 'identity' },
    );
    const loaded = step(model, [{ name: 's', type: 'string', shape: ['N', 2] }], true);
    const outputs = runPipeline([loaded], [{ name: 's', type: 'string', dims: [1, 2], data: ['a', 'b'] }], 1);
    expect(outputs[0]!.dims).toEqual([1, 2]);
    expect(outputs[0]!.data).toEqual(['a', 'b']);
    expect(arrayTag(outputs[0]!.dims)).toBe('A');
    // One row: concatTensorData hands back the single run's data as it is.
    expect(arrayTag(outputs[0]!.data as string[])).toBe('A');
    loaded.session.release();
  });
});
