import { serialize } from 'node:v8';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { encodeModel, valueInfo } from '../../../../test/support/onnx-graph.js';
import { createSession } from './native-session.js';
import { runPipeline } from './run-pipeline.js';

const { onnx } = onnxProto;

/** V8's serializer tag of an array (what `postMessage` writes): `A` dense, `a` sparse (holey). */
function arrayTag(value: readonly unknown[]): string {
  return String.fromCharCode(serialize(value)[2]!);
}

describe('runPipeline (review): the reply is dense for every output type', () => {
  it("answers a string output's data as a dense array (onnxruntime hands it out holey, like dims)", () => {
    const model = encodeModel(
      {
        nodes: [onnx.NodeProto.create({ opType: 'Identity', input: ['s'], output: ['o'] })],
        inputs: [valueInfo('s', onnx.TensorProto.DataType.STRING, ['N', 1])],
        outputs: [valueInfo('o', onnx.TensorProto.DataType.STRING, ['N', 1])],
      },
      { producerName: 'quoll-review', graphName: 'identity' },
    );
    const session = createSession(model, 1);
    try {
      const outputs = runPipeline(
        [
          {
            spec: {
              label: 'm v1',
              sha: 'x',
              path: '',
              inputs: [{ name: 's', type: 'string', shape: ['N', 1] }],
              feedsFrom: null,
              single: false,
              tensorFields: null,
            },
            session,
          },
        ],
        [{ name: 's', type: 'string', dims: [3, 1], data: ['a', 'b', 'c'] }],
        3,
      );
      expect(outputs[0]!.data).toEqual(['a', 'b', 'c']);
      expect(arrayTag(outputs[0]!.dims)).toBe('A');
      expect(arrayTag(outputs[0]!.data as string[])).toBe('A');
    } finally {
      session.release();
    }
  });
});
