import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import { lastDelimited, OnnxWireError, readNameField, WIRE, WireReader } from './wire-reader.js';

export { OnnxWireError } from './wire-reader.js';

const { onnx } = onnxProto;

/**
 * The parts of an ONNX ModelProto that say how to call the model, read without decoding the
 * rest: the graph's inputs and outputs, the names of its initializers, the opsets and producer.
 */
export interface ModelInterface {
  /** `ir_version`; 0 when absent. */
  irVersion: number;
  producerName: string;
  opsetImport: Onnx.OperatorSetIdProto[];
  /** The graph, or null (a model whose graph field repeats is refused: onnxruntime would merge them). */
  graph: {
    /** Names of the dense initializers and of the sparse ones' values, in file order. */
    initializerNames: string[];
    input: Onnx.ValueInfoProto[];
    output: Onnx.ValueInfoProto[];
  } | null;
}

/**
 * Reads a model's interface ({@link ModelInterface}) from a serialized ModelProto. Only the
 * ModelProto and GraphProto levels are walked field by field; every field not needed (the
 * graph's nodes, tensor payloads, training info, functions, metadata) is skipped by its length
 * without being decoded, and a tensor initializer is read for its name alone. A full
 * `ModelProto.decode` builds every payload value (one `Long` object per int64 value of an
 * initializer), so a few megabytes of varints cost seconds and hundreds of megabytes of heap.
 * The graph's inputs and outputs are small messages and are decoded whole with `onnx-proto`.
 * @throws OnnxWireError when the bytes are not well-formed protobuf of that shape
 */
export function readModelInterface(bytes: Uint8Array): ModelInterface {
  const model: ModelInterface = { irVersion: 0, producerName: '', opsetImport: [], graph: null };
  const reader = new WireReader(bytes, 0, bytes.byteLength);
  while (!reader.done) {
    const { field, wire } = reader.tag();
    switch (field) {
      case 1:
        reader.expect(field, wire, WIRE.varint);
        model.irVersion = reader.int64();
        break;
      case 2:
        model.producerName = reader.string(field, wire);
        break;
      case 7: {
        // Twice, onnxruntime (C++ protobuf) would merge the graphs where protobufjs keeps the
        // last: the inputs read here would not be the ones that run.
        if (model.graph !== null) throw new OnnxWireError('the model has more than one graph field');
        const { start, end } = reader.delimited(field, wire);
        model.graph = readGraph(bytes, start, end);
        break;
      }
      case 8: {
        const { start, end } = reader.delimited(field, wire);
        model.opsetImport.push(decodeWith(onnx.OperatorSetIdProto, bytes, start, end));
        break;
      }
      default:
        reader.skip(wire);
    }
  }
  return model;
}

function readGraph(bytes: Uint8Array, from: number, to: number): NonNullable<ModelInterface['graph']> {
  const graph: NonNullable<ModelInterface['graph']> = { initializerNames: [], input: [], output: [] };
  const reader = new WireReader(bytes, from, to);
  while (!reader.done) {
    const { field, wire } = reader.tag();
    switch (field) {
      case 5: {
        // initializer: TensorProto, whose name is field 8.
        const { start, end } = reader.delimited(field, wire);
        const name = readNameField(bytes, start, end, 8);
        if (name !== '') graph.initializerNames.push(name);
        break;
      }
      case 15: {
        // sparse_initializer: SparseTensorProto, whose values (field 1) are a TensorProto.
        const { start, end } = reader.delimited(field, wire);
        const values = lastDelimited(bytes, start, end, 1);
        const name = values === null ? '' : readNameField(bytes, values.start, values.end, 8);
        if (name !== '') graph.initializerNames.push(name);
        break;
      }
      case 11:
      case 12: {
        const { start, end } = reader.delimited(field, wire);
        (field === 11 ? graph.input : graph.output).push(decodeWith(onnx.ValueInfoProto, bytes, start, end));
        break;
      }
      default:
        reader.skip(wire);
    }
  }
  return graph;
}

function decodeWith<T>(
  type: { decode(bytes: Uint8Array): T },
  bytes: Uint8Array,
  start: number,
  end: number,
): T {
  try {
    return type.decode(bytes.subarray(start, end));
  } catch (error) {
    throw new OnnxWireError((error as Error).message);
  }
}
