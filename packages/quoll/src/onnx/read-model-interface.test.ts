import { readFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import {
  makeInt64SumModel,
  makeMultiIoModel,
  makeOpenInferenceExampleModel,
  makeScaleModel,
  makeTreeEnsembleRegressor,
} from '../../../../test/support/synthetic-models.js';
import {
  hasSharedFixtures as hasFixtures,
  SHARED_FIXTURES,
} from '../../../../test/support/shared-fixtures.js';
import { inspectOnnxModel } from './index.js';
import { readModelInterface } from './read-model-interface.js';
import { delimited, varint } from '../../../../test/support/protobuf-wire.js';

const { onnx } = onnxProto;

/**
 * `model` with one more initializer: an int64 tensor of `count` zeros, packed (`int64_data`,
 * TensorProto field 7), one byte each. A full decode builds one `Long` per value.
 */
function withInt64Initializer(model: Uint8Array, count: number): Buffer {
  const proto = onnx.ModelProto.decode(model);
  const graph = Buffer.from(onnx.GraphProto.encode(proto.graph!).finish());
  proto.graph = null;
  const rest = Buffer.from(onnx.ModelProto.encode(proto).finish());
  const tensor = Buffer.concat([
    varint(1 * 8), // dims
    varint(count),
    varint(2 * 8), // data_type INT64
    varint(7),
    delimited(8, Buffer.from('payload')), // name
    delimited(7, Buffer.alloc(count)), // int64_data, packed
  ]);
  return Buffer.concat([rest, delimited(7, Buffer.concat([graph, delimited(5, tensor)]))]);
}

const models: [string, () => Uint8Array][] = [
  ['tree ensemble', () => makeTreeEnsembleRegressor({ features: 29 })],
  ['multi-io', () => makeMultiIoModel()],
  ['scale with its initializer as an input', () => makeScaleModel({ initializerAsInput: true })],
  ['int64 sum', () => makeInt64SumModel()],
  ['open inference example', () => makeOpenInferenceExampleModel()],
  ['scale with an int64 initializer', () => withInt64Initializer(makeScaleModel(), 1000)],
];
if (hasFixtures) models.push(['tutorial rf model', () => readFileSync(`${SHARED_FIXTURES}rf_model.onnx`)]);

describe('readModelInterface', () => {
  it.each(models)('reads the %s as ModelProto.decode does', (_what, make) => {
    const bytes = make();
    const read = readModelInterface(bytes);
    const full = onnx.ModelProto.decode(bytes);
    expect(read.irVersion).toBe(Number(full.irVersion));
    expect(read.producerName).toBe(full.producerName);
    expect(read.opsetImport.map((opset) => onnx.OperatorSetIdProto.toObject(opset))).toEqual(
      full.opsetImport.map((opset) =>
        onnx.OperatorSetIdProto.toObject(opset as onnxProto.onnx.OperatorSetIdProto),
      ),
    );
    const graph = full.graph!;
    // Unnamed initializers are left out: they cannot shadow an input.
    expect(read.graph!.initializerNames).toEqual(
      [
        ...(graph.initializer ?? []).map((tensor) => tensor.name),
        ...(graph.sparseInitializer ?? []).map((sparse) => sparse.values?.name),
      ].filter((name) => !!name),
    );
    const json = (values: unknown): unknown => JSON.parse(JSON.stringify(values ?? [])) as unknown;
    expect(json(read.graph!.input)).toEqual(json(graph.input));
    expect(json(read.graph!.output)).toEqual(json(graph.output));
  });

  it('inspects a model with an 8 MB int64 initializer without decoding its values', () => {
    const bytes = withInt64Initializer(makeScaleModel({ inputName: 'tensor', width: 18 }), 8_000_000);
    expect(bytes.byteLength).toBeGreaterThan(8_000_000);
    const before = process.memoryUsage().heapUsed;
    const info = inspectOnnxModel(bytes);
    const grown = process.memoryUsage().heapUsed - before;
    expect(info.inputs.map((input) => input.name)).toEqual(['tensor']);
    // A full decode holds 8 million Longs (hundreds of MB) at this point.
    expect(grown).toBeLessThan(50 * 2 ** 20);
  });

  it('refuses a model whose graph field repeats (onnxruntime would merge the two), as invalid_model', () => {
    const twice = Buffer.concat([
      makeScaleModel(),
      makeScaleModel({ inputName: 'other', outputName: 'out' }),
    ]);
    let error: unknown;
    try {
      inspectOnnxModel(twice);
    } catch (caught) {
      error = caught;
    }
    expect((error as ApiError).code).toBe('invalid_model');
  });

  it('refuses such an initializer cut short, as invalid_model', () => {
    const bytes = withInt64Initializer(makeScaleModel(), 100_000);
    let error: unknown;
    try {
      inspectOnnxModel(bytes.subarray(0, bytes.byteLength - 10));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).code).toBe('invalid_model');
  });
});
